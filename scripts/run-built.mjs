/* global process, console, URL */
// Runs a compiled entry point of dist/ in this process (`npm start`, `npm run doctor`), or says in one
// line that the build is missing, instead of Node's ERR_MODULE_NOT_FOUND stack trace.
// Usage: node scripts/run-built.mjs dist/server.js [arguments for it...]
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'

const [entry, ...rest] = process.argv.slice(2)
if (entry === undefined) {
  console.error('usage: node scripts/run-built.mjs dist/<file>.js [arguments...]')
  process.exit(2)
}
// Relative to the project, not to the working directory, which stays the caller's (./.env is read there).
const path = fileURLToPath(new URL(`../${entry}`, import.meta.url))
if (!existsSync(path)) {
  console.error(`chat-token: ${entry} does not exist: run \`npm run build\` first`)
  process.exit(1)
}
// The entry reads its own arguments from process.argv, as if started as `node <entry> ...`.
process.argv = [process.argv[0], path, ...rest]
await import(pathToFileURL(path).href)
