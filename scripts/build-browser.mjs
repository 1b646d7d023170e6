/* global process, console, URL, Buffer */
// Bundles the browser helper (src/browser) into dist/public: chat-identity.js, a classic script
// defining the `ChatIdentity` global, and chat-identity.mjs, an ES module exporting start and logout.
// `npm run build` runs it after tsc. Tests and the demo import buildBrowserHelper() to bundle the
// current source themselves, so they never serve a stale dist/. It lives outside dev/ because the
// container's build stage (which has no dev/) runs `npm run build`.
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const browserDir = fileURLToPath(new URL('../src/browser/', import.meta.url))

/** @type {import('esbuild').BuildOptions} */
const common = {
  entryPoints: [`${browserDir}chat-identity.ts`],
  tsconfig: `${browserDir}tsconfig.json`,
  bundle: true,
  minify: true,
  target: 'es2020',
  platform: 'browser',
  charset: 'utf8',
  legalComments: 'none',
  write: false,
  logLevel: 'silent'
}

/**
 * Builds both bundles in memory; with `outdir`, also writes them there.
 * @param {{ outdir?: string }} [options]
 * @returns {Promise<Record<'chat-identity.js' | 'chat-identity.mjs', string>>}
 */
export async function buildBrowserHelper (options = {}) {
  const [classic, module] = await Promise.all([
    build({ ...common, format: 'iife', globalName: 'ChatIdentity' }),
    build({ ...common, format: 'esm' })
  ])
  const files = {
    'chat-identity.js': classic.outputFiles[0].text,
    'chat-identity.mjs': module.outputFiles[0].text
  }
  if (options.outdir !== undefined) {
    await mkdir(options.outdir, { recursive: true })
    await Promise.all(Object.entries(files).map(([name, text]) => writeFile(`${options.outdir}/${name}`, text)))
  }
  return files
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const outdir = fileURLToPath(new URL('../dist/public', import.meta.url))
  const files = await buildBrowserHelper({ outdir })
  for (const [name, text] of Object.entries(files)) {
    console.log(`dist/public/${name}: ${Buffer.byteLength(text)} bytes, ${gzipSync(text, { level: 9 }).length} gzipped`)
  }
}
