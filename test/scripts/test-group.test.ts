import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { PROJECT_ROOT, runToExit } from '../process-helper.js'

/**
 * `npm test` (scripts/test-group.mjs all) in a project of two test files: the parallel group first,
 * then the serial group, one count for both, and a failure in either one fails the whole. The project's
 * .taprc keeps this one's plugin list: tap's test class is built once for both (a different list would
 * rebuild it under the suite's feet).
 */

const script = join(PROJECT_ROOT, 'scripts/test-group.mjs')
const ours = parse(readFileSync(join(PROJECT_ROOT, '.taprc'), 'utf8')) as { plugin: string[] }

/** Each test file appends its name to `order.log` when it starts and again when it ends. */
function project (serialPasses: boolean): string {
  const root = mkdtempSync(join(tmpdir(), 'chat-token-test-group-'))
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'))
  mkdirSync(join(root, 'test'))
  writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n')
  writeFileSync(join(root, '.taprc'), stringify({
    plugin: ours.plugin,
    include: ['test/**/*.test.mjs'],
    jobs: 2,
    reporter: 'terse',
    'allow-incomplete-coverage': true,
    'coverage-report': ['text-summary'],
    serial: ['test/b-serial.test.mjs']
  }))
  // Something for coverage to report on.
  writeFileSync(join(root, 'one.mjs'), 'export const one = () => 1\n')
  const file = (name: string, body: string): void => writeFileSync(join(root, 'test', name), [
    'import { appendFileSync } from \'node:fs\'',
    'import t from \'tap\'',
    'import { one } from \'../one.mjs\'',
    `appendFileSync('order.log', 'start ${name}\\n')`,
    body,
    `t.teardown(() => appendFileSync('order.log', 'end ${name}\\n'))`
  ].join('\n'))
  // Named so that tap alone would run the serial file first.
  file('b-serial.test.mjs', `t.equal(one(), ${serialPasses ? 1 : 2}, 'the serial file')`)
  file('c-parallel.test.mjs', 't.equal(one(), 1)\nt.ok(true)')
  return root
}

async function run (root: string): Promise<{ code: number | null; stdout: string; order: string[] }> {
  // Not the suite's own tap environment: the runner inside must behave as it does at the top.
  const finished = await runToExit(process.execPath, [script, 'all'], {
    cwd: root,
    env: { HOME: process.env.HOME ?? '/tmp', _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    timeoutMs: 120_000
  })
  return { ...finished, order: readFileSync(join(root, 'order.log'), 'utf8').trim().split('\n') }
}

t.test('the parallel group runs first, then the serial one; the last line counts both', async t => {
  const { code, stdout, order } = await run(project(true))
  t.equal(code, 0)
  t.same(order, ['start c-parallel.test.mjs', 'end c-parallel.test.mjs', 'start b-serial.test.mjs', 'end b-serial.test.mjs'])
  const lines = stdout.trimEnd().split('\n')
  t.equal(lines.at(-1), '# { total: 3, pass: 3 }')
  t.match(stdout, /Coverage summary[\s\S]*# whole suite, both runs/, 'one coverage summary, before the count')
  t.equal(stdout.match(/Coverage summary/g)?.length, 1)
})

t.test('a failure in the second run fails the whole: the count says so and the exit is not 0', async t => {
  const { code, stdout } = await run(project(false))
  t.not(code, 0)
  t.equal(stdout.trimEnd().split('\n').at(-1), '# { total: 3, pass: 2, fail: 1 }')
})
