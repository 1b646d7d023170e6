/* global process, URL */
// `npm run test:serial` / `npm run test:parallel`: one of the two groups npm test runs, as .taprc
// defines them. The serial group is the files listed under `serial:` (each runs alone); the parallel
// group is every other test file. Further arguments go to tap, e.g.
// `npm run test:parallel -- --disable-coverage --exclude 'test/e2e/**'`.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

const root = fileURLToPath(new URL('..', import.meta.url))
const [group, ...rest] = process.argv.slice(2)
if (group !== 'serial' && group !== 'parallel') {
  process.stderr.write('usage: node scripts/test-group.mjs serial|parallel [tap arguments]\n')
  process.exit(2)
}
const serial = parse(readFileSync(`${root}.taprc`, 'utf8')).serial ?? []
const missing = serial.filter(path => !existsSync(`${root}${path}`))
if (missing.length > 0) {
  process.stderr.write(`.taprc lists serial files that do not exist: ${missing.join(', ')}\n`)
  process.exit(1)
}
const args = group === 'serial' ? [...serial, ...rest] : [...serial.map(path => `--exclude=${path}`), ...rest]
const tap = `${root}node_modules/tap/dist/esm/run.mjs`
const child = spawn(process.execPath, [tap, ...args], { cwd: root, stdio: 'inherit' })
child.on('exit', (code, signal) => { process.exit(code ?? (signal === null ? 1 : 128)) })
