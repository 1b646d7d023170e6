import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { getPriority, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { PROJECT_ROOT, runToExit } from '../process-helper.js'

/**
 * `npm test` (scripts/test-group.mjs lanes) and `npm run test:sequential` in a small project: four
 * timing files (listed under `serial:`) in two folders, the last of them also under package.json's
 * `testAlone`, and three others, two of them in one folder. t2 fails its first run and passes after;
 * t3 passes or fails, as a test asks. The project's .taprc keeps this one's plugin list: tap's
 * test class is built once for both (a different list would rebuild it under the suite's feet). Each
 * run of the runner costs several seconds of CPU on a slow machine (every test process about one), so
 * each test asks as much of one run as it can.
 *
 * Each file's one test appends `start <name> <pid> <niceness> <TEST_REDIS_URL>` to `events.log` as it
 * starts and `end <name>` as it ends. The first timing file and the first parallel one wait for each
 * other's start (up to 90 s: the parallel lane runs at the lowest priority, and on a busy machine may
 * start late): were the lanes run one after the other, those waits would run out and fail.
 */

t.setTimeout(600_000)
const script = join(PROJECT_ROOT, 'scripts/test-group.mjs')
const ours = parse(readFileSync(join(PROJECT_ROOT, '.taprc'), 'utf8')) as { plugin: string[] }

interface Fixture { root: string }

/** This process's niceness, which the suite in the fixture starts with. */
const own = (): number => getPriority()

function project ({ t3 = 'passes', together = true }: { t3?: 'passes' | 'fails'; together?: boolean }): Fixture {
  const root = mkdtempSync(join(tmpdir(), 'chat-token-test-group-'))
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(root, 'node_modules'))
  for (const folder of ['test/timing', 'test/timing2', 'test/batched']) mkdirSync(join(root, folder), { recursive: true })
  writeFileSync(join(root, 'package.json'), JSON.stringify({ type: 'module', testAlone: ['test/timing2/t4.test.mjs'] }))
  writeFileSync(join(root, '.taprc'), stringify({
    plugin: ours.plugin,
    include: ['test/**/*.test.mjs'],
    jobs: 2,
    timeout: 120,
    reporter: 'terse',
    'allow-incomplete-coverage': true,
    'coverage-report': ['text-summary'],
    serial: ['test/timing/t1.test.mjs', 'test/timing/t2.test.mjs', 'test/timing2/t3.test.mjs', 'test/timing2/t4.test.mjs']
  }))
  // What coverage reports on: the parallel lane calls one(), the timing lane two(). Were either lane's
  // coverage lost, functions would not be covered in full.
  writeFileSync(join(root, 'covered.mjs'), 'export const one = () => 1\nexport const two = () => 2\n')
  writeFileSync(join(root, 'events.mjs'), [
    'import { appendFileSync, readFileSync } from \'node:fs\'',
    'import { getPriority } from \'node:os\'',
    'const LOG = new URL(\'./events.log\', import.meta.url)',
    'export const started = name => appendFileSync(LOG, `start ${name} ${process.pid} ${getPriority()} ${process.env.TEST_REDIS_URL ?? \'-\'}\\n`)',
    'export const ended = name => appendFileSync(LOG, `end ${name}\\n`)',
    'export async function startOf (name) {',
    '  const deadline = Date.now() + 90_000',
    '  while (!readFileSync(LOG, \'utf8\').includes(`start ${name} `)) {',
    '    if (Date.now() > deadline) throw new Error(`${name} never started while this file ran`)',
    '    await new Promise(resolve => setTimeout(resolve, 20))',
    '  }',
    '}',
    ''
  ].join('\n'))
  /** A test file whose one test logs its start and end around `body`. */
  const file = (path: string, body: string[]): void => {
    const name = path.split('/').at(-1)!
    const up = '../'.repeat(path.split('/').length - 1)
    writeFileSync(join(root, path), [
      'import t from \'tap\'',
      `import { one, two } from '${up}covered.mjs'`,
      `import { ended, started, startOf } from '${up}events.mjs'`,
      `t.test('${name}', async t => {`,
      `  started('${name}')`,
      ...body.map(line => `  ${line}`),
      `  ended('${name}')`,
      '})',
      ''
    ].join('\n'))
  }
  // Its runs counted in a file of their own: the first fails.
  file('test/timing/t2.test.mjs', [
    'const { appendFileSync, readFileSync } = await import(\'node:fs\')',
    'const runs = new URL(\'../../t2-runs\', import.meta.url)',
    'appendFileSync(runs, \'x\')',
    't.equal(two(), readFileSync(runs, \'utf8\').length > 1 ? 2 : 3, \'the timing file t2\')'
  ])
  file('test/c.test.mjs', ['t.equal(one(), 1)'])
  // t1 and a wait for each other: the lanes must run at the same time.
  file('test/timing/t1.test.mjs', [...together ? ['await startOf(\'a.test.mjs\')'] : [], 't.equal(two(), 2)'])
  file('test/timing2/t3.test.mjs', [`t.equal(two(), ${t3 === 'passes' ? 2 : 3}, 'the timing file t3')`])
  file('test/timing2/t4.test.mjs', ['t.equal(two(), 2)'])
  // The Redis this lane was given answers PING.
  file('test/batched/a.test.mjs', [
    ...together ? ['await startOf(\'t1.test.mjs\')'] : [],
    't.equal(one(), 1)',
    'const { port } = new URL(process.env.TEST_REDIS_URL ?? \'redis://127.0.0.1:6379\')',
    'const socket = (await import(\'node:net\')).connect(Number(port), \'127.0.0.1\')',
    'socket.end(\'PING\\r\\n\')',
    'let reply = \'\'',
    'for await (const chunk of socket) reply += chunk',
    't.equal(reply, \'+PONG\\r\\n\', \'the lane\\\'s Redis answers\')'
  ])
  file('test/batched/b.test.mjs', ['t.equal(one(), 1)', 't.ok(true)'])
  return { root }
}

interface Run { code: number | null; stdout: string; events: string[] }

async function run ({ root }: Fixture, group = 'lanes', options: string[] = []): Promise<Run> {
  // Not the suite's own tap environment: the runner inside must behave as it does at the top.
  const finished = await runToExit(process.execPath, [script, group, ...options], {
    cwd: root,
    env: { HOME: process.env.HOME ?? '/tmp', _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    timeoutMs: 240_000
  })
  const events = readFileSync(join(root, 'events.log'), 'utf8').trim().split('\n')
  rmSync(root, { recursive: true, force: true })
  return { ...finished, events }
}

/**
 * The files' starts and ends in the order they happened, as `start <name>` / `end <name>`, when each
 * file ended before the next one started; undefined when two overlapped. (tap starts the files of a
 * run in whatever order its own set-up for each finishes, not always by name.)
 */
function oneAtATime (events: string[]): string[] | undefined {
  const lines = events.map(line => line.split(' ').slice(0, 2).join(' '))
  const paired = lines.every((line, i) => i % 2 === 0 ? line.startsWith('start ') : line === lines[i - 1]!.replace(/^start /, 'end '))
  return paired && lines.length % 2 === 0 ? lines : undefined
}

const startLine = (events: string[], name: string): { index: number; pid: number; niceness: number; redis: string } => {
  const index = events.findIndex(line => line.startsWith(`start ${name} `))
  const [, , pid, niceness, redis] = events[index]?.split(' ') ?? []
  return { index, pid: Number(pid), niceness: Number(niceness), redis: redis ?? '' }
}

t.test('`lanes` (npm test), both lanes at once: timing files one at a time, the rest two at a time at the lowest priority and batched by folder; a timing file that failed beside them runs again alone, and that run decides; a failure fails the whole; one coverage summary and one count', async t => {
  // t2 fails only beside the other lane; t3 fails alone too.
  const { code, stdout, events } = await run(project({ t3: 'fails' }))
  t.not(code, 0, 'a timing file that fails alone too fails the suite')
  t.equal(stdout.trimEnd().split('\n').at(-1), '# { total: 9, pass: 8, fail: 1 }', 'the last line counts both lanes, each timing file as its last run went: t2 passed, t3 failed')
  t.match(stdout, /# timing lane: 3 test processes[\s\S]*FAIL\s+test\/timing\/t2\.test\.mjs[\s\S]*# alone, after both lanes, with 2 timing files that failed beside the other lane: (test\/timing\/t2\.test\.mjs, test\/timing2\/t3\.test\.mjs|test\/timing2\/t3\.test\.mjs, test\/timing\/t2\.test\.mjs): 3 test processes/, 't2\'s first failure is shown, then the second runs')
  t.match(stdout, /Coverage summary[\s\S]*# whole suite, both lanes/, 'one coverage summary, before the count')
  t.equal(stdout.match(/Coverage summary/g)?.length, 1)
  t.match(stdout, /Functions\s*: 100% /, 'coverage from both lanes and the second runs is kept')

  const [t1, t2, t3, t4, a, b, c] = ['t1', 't2', 't3', 't4', 'a', 'b', 'c'].map(name => startLine(events, `${name}.test.mjs`))
  t.ok([t1, t2, t3, t4, a, b, c].every(line => line!.index >= 0), `every file ran: ${events.join(' | ')}`)
  const timing = oneAtATime(events.filter(line => /^\w+ t\d/.test(line)))
  t.same(timing?.filter(line => line.startsWith('start ')).sort(), ['start t1.test.mjs', 'start t2.test.mjs', 'start t2.test.mjs', 'start t3.test.mjs', 'start t3.test.mjs', 'start t4.test.mjs'], `one timing file at a time, t2 and t3 twice: ${events.join(' | ')}`)
  // Where both lanes had ended: the last end of a file's first run.
  const lanesEnded = Math.max(...['t1', 't2', 't3', 'a', 'b', 'c'].map(name => events.indexOf(`end ${name}.test.mjs`)))
  const [t2Again, t3Again] = ['t2', 't3'].map(name => {
    const first = startLine(events, `${name}.test.mjs`).index
    const again = startLine(events.slice(first + 1), `${name}.test.mjs`)
    return { ...again, index: again.index < 0 ? -1 : first + 1 + again.index }
  })
  t.ok(t2Again!.index > lanesEnded && t3Again!.index > lanesEnded, `t2 and t3 ran again once both lanes had ended: ${events.join(' | ')}`)
  t.ok(t4!.index > lanesEnded, 't4 (package.json testAlone) started once both lanes had ended')
  t.equal(new Set([t1, t2, t3, t4, t2Again, t3Again].map(line => line!.pid)).size, 6, 'each timing file in a process of its own, the second runs too')
  t.equal(t2Again!.niceness, own(), 'run again at the suite\'s priority')
  t.equal(t4!.niceness, own(), 'the file run alone too')
  t.equal(a!.pid, b!.pid, 'the two parallel files of one folder in one process')
  t.not(c!.pid, a!.pid, 'a file of another folder in a process of its own')

  t.equal(a!.niceness, 19, 'the parallel lane runs at the lowest priority')
  t.equal(c!.niceness, 19)
  t.equal(t1!.niceness, own(), 'the timing lane at the priority the suite was started with')
  // Inside `npm test` this file itself runs in the parallel lane, at 19: there the two cannot differ.
  if (own() < 19) t.ok(a!.niceness > t1!.niceness, 'below the timing lane')
  t.match(a!.redis, /^redis:\/\/127\.0\.0\.1:\d+$/, 'the parallel lane has a Redis of its own')
  t.equal(t1!.redis, '-', 'the timing lane the shared one')
})

t.test('`sequential`: the parallel lane, then the timing files with nothing beside them; a failed one is not run again', async t => {
  const { code, stdout, events } = await run(project({ together: false }), 'sequential', ['--disable-coverage'])
  t.not(code, 0, stdout)
  t.equal(stdout.trimEnd().split('\n').at(-1), '# { total: 9, pass: 8, fail: 1 }', 't2\'s one run decides')
  t.notMatch(stdout, /Coverage summary/, 'no coverage report when tap is told to leave coverage out')
  const names = events.map(line => line.split(' ').slice(0, 2).join(' '))
  t.same(names.slice(0, 6).map(line => line.split(' ')[1]).sort(), ['a.test.mjs', 'a.test.mjs', 'b.test.mjs', 'b.test.mjs', 'c.test.mjs', 'c.test.mjs'], `the other files first: ${names.join(' | ')}`)
  t.same(oneAtATime(events.slice(6))?.filter(line => line.startsWith('start ')).sort(), ['start t1.test.mjs', 'start t2.test.mjs', 'start t3.test.mjs', 'start t4.test.mjs'], 'then the timing files, one at a time, t2 once')
  const [t1, a, b] = ['t1', 'a', 'b'].map(name => startLine(events, `${name}.test.mjs`))
  t.equal(a!.pid, b!.pid, 'the parallel files of one folder batched')
  t.equal(a!.niceness, own(), 'nothing runs at a lower priority')
  t.equal(a!.redis, '-', 'nor with a Redis of its own')
  t.equal(t1!.niceness, own())
})
