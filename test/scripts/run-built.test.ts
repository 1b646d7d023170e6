import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { hasStackTrace, PROJECT_ROOT, runToExit } from '../process-helper.js'

/** `npm start` and `npm run doctor` before a build: one line saying to build, not a module error. */

const manifest = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }

/** A project folder holding only the launcher, as a fresh clone holds it before `npm run build`. */
function unbuiltProject (): string {
  const root = mkdtempSync(join(tmpdir(), 'chat-token-unbuilt-'))
  mkdirSync(join(root, 'scripts'))
  copyFileSync(join(PROJECT_ROOT, 'scripts/run-built.mjs'), join(root, 'scripts/run-built.mjs'))
  return root
}

t.test('start and doctor go through the launcher', async t => {
  t.equal(manifest.scripts.start, 'node scripts/run-built.mjs dist/server.js')
  t.equal(manifest.scripts.doctor, 'node scripts/run-built.mjs dist/doctor/cli.js')
})

for (const entry of ['dist/server.js', 'dist/doctor/cli.js']) {
  t.test(`${entry} missing: one line naming npm run build, exit 1`, async t => {
    const root = unbuiltProject()
    const run = await runToExit(process.execPath, [join(root, 'scripts/run-built.mjs'), entry, '--json'])
    t.equal(run.code, 1)
    t.equal(run.stderr, `chat-token: ${entry} does not exist: run \`npm run build\` first\n`)
    t.notOk(hasStackTrace(run.stderr))
  })
}

t.test('once built, the entry runs in the same process with its own arguments, from the caller\'s directory', async t => {
  const root = unbuiltProject()
  mkdirSync(join(root, 'dist'))
  writeFileSync(join(root, 'dist/entry.js'), 'console.log(JSON.stringify({ argv: process.argv.slice(2), script: process.argv[1], cwd: process.cwd() }))\n')
  const cwd = mkdtempSync(join(tmpdir(), 'chat-token-caller-'))
  const run = await runToExit(process.execPath, [join(root, 'scripts/run-built.mjs'), 'dist/entry.js', '--email', 'ada@example.com'], { cwd })
  t.equal(run.code, 0, run.stderr)
  t.same(JSON.parse(run.stdout), { argv: ['--email', 'ada@example.com'], script: join(root, 'dist/entry.js'), cwd })
})
