/* global process, URL */
// Runs the test files in two lanes, each a tap run:
//
// - The timing lane: the files listed under `serial:` in .taprc (they measure time: answers by a
//   deadline, drains, load against a budget), one at a time, each in a process of its own.
// - The parallel lane: every other file, two processes at a time, most of them in batches: the files
//   of one folder, up to BATCH_SIZE, imported one after another into one test process. A test process
//   costs about half a second of CPU before its first test (tap, the loader, the service's modules),
//   which on two cores was a third of the suite's time.
//
// `npm test` (`lanes`) runs both at once: the parallel lane at the lowest CPU priority (nice 19) with a
// Redis of its own at that priority (TEST_REDIS_URL, when redis-server is installed), the timing lane
// at the priority it was started with. Then, with the machine to themselves: the timing files that
// failed beside the other lane, again (their figures may have measured the neighbour; the second run
// decides, the first failure stays in the report), and the files under package.json's `testAlone`.
// `npm run test:sequential` (`sequential`) runs the parallel lane, then the timing lane with nothing
// beside it, each file once.
//
// Coverage from both lanes is reported once at the end, followed by one count for the whole suite in
// tap's own form (`# { total: N, pass: P, ... }`, which .ci/run reads).
//
// `npm run test:timing` / `npm run test:parallel` run one lane. Further arguments are tap options for
// each run, e.g. `npm test -- --disable-coverage --exclude 'test/e2e/**'`; to run some files, name them
// to tap itself (`npx tap test/routes/health.test.ts`).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { setPriority } from 'node:os'
import { dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parse } from 'yaml'

// The project is the working directory (npm runs scripts from the package root); tap is this one's.
const root = `${process.cwd()}/`
const [group, ...options] = process.argv.slice(2)
if (!['lanes', 'sequential', 'timing', 'parallel'].includes(group)) {
  process.stderr.write('usage: node scripts/test-group.mjs lanes|sequential|timing|parallel [tap options]\n')
  process.exit(2)
}
const taprc = parse(readFileSync(`${root}.taprc`, 'utf8'))
const timingFiles = new Set(taprc.serial ?? [])
const missing = [...timingFiles].filter(path => !existsSync(`${root}${path}`))
if (missing.length > 0) {
  process.stderr.write(`.taprc lists serial files that do not exist: ${missing.join(', ')}\n`)
  process.exit(1)
}
// Timing files that need the whole machine (package.json `testAlone`): side by side (`lanes`) they run
// last, once both lanes have finished; one after the other (`sequential`) the timing lane has it anyway.
const aloneFiles = new Set(JSON.parse(readFileSync(`${root}package.json`, 'utf8')).testAlone ?? [])
const notTiming = [...aloneFiles].filter(path => !timingFiles.has(path))
if (notTiming.length > 0) {
  process.stderr.write(`package.json's testAlone names files not under .taprc's serial: ${notTiming.join(', ')}\n`)
  process.exit(1)
}

const tap = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const SUMMARY = /^# \{ total: .*\}\s*$/gm
const LOWEST_PRIORITY = 19
const BATCH_SIZE = 8
// A batch's time limit is its files' limits added up, up to this: it guards against a hang, and a
// hung batch must not hold CI for the files' generous limits all together.
const BATCH_TIMEOUT_CAP_MS = 600_000
// tap's own default, when .taprc sets none.
const FILE_TIMEOUT_S = taprc.timeout ?? 30

// Every file the options select, as tap itself lists them (include, exclude and the rest applied).
const listed = spawnSync(process.execPath, [tap, 'list', ...options], { cwd: root, encoding: 'utf8' })
if (listed.status !== 0 && !/No files found/.test(listed.stderr + listed.stdout)) {
  process.stderr.write(`tap list failed: ${listed.stderr}`)
  process.exit(listed.status ?? 1)
}
const files = listed.stdout.split('\n').filter(line => line !== '')

// Each lane is a tap run over a list of its own (`--save`: tap runs the files the list names). A tap
// run over every file would also clear .tap/coverage as it starts, under the other lane's feet; with a
// list it keeps what is there, so it is cleared here, once, before both.
const laneDir = `${root}.tap/lanes/`
rmSync(`${root}.tap/coverage`, { recursive: true, force: true })
rmSync(`${root}.tap/processinfo`, { recursive: true, force: true })
rmSync(laneDir, { recursive: true, force: true })
mkdirSync(laneDir, { recursive: true })
/** The time limit a file sets itself at its top level (`t.setTimeout(ms)`), or tap's per-file one. */
function timeLimitMs (file) {
  const own = /^t\.setTimeout\(([\d_]+)\)/m.exec(readFileSync(`${root}${file}`, 'utf8'))
  return own === null ? FILE_TIMEOUT_S * 1000 : Number(own[1].replaceAll('_', ''))
}

/**
 * A lane's files as tap is to run them: in batches of up to BATCH_SIZE files of one
 * folder. A batch is a generated test file under .tap/lanes/ (named after its folder) that imports its
 * files in tap's order; their tests run one after another in one process, within the time limits the
 * files would have had one by one, added up (at most BATCH_TIMEOUT_CAP_MS).
 */
function batched (lane, laneFiles) {
  const byFolder = new Map()
  for (const file of laneFiles) byFolder.set(dirname(file), [...(byFolder.get(dirname(file)) ?? []), file])
  const batches = []
  for (const [folder, folderFiles] of byFolder) {
    for (let start = 0; start < folderFiles.length; start += BATCH_SIZE) {
      const batch = folderFiles.slice(start, start + BATCH_SIZE)
      if (batch.length === 1) {
        batches.push(batch[0])
        continue
      }
      const name = `.tap/lanes/${lane}/${folder}/batch-${start / BATCH_SIZE + 1}.test.mjs`
      mkdirSync(dirname(`${root}${name}`), { recursive: true })
      writeFileSync(`${root}${name}`, [
        '// Generated by scripts/test-group.mjs: these test files, run one after another in one process.',
        'import t from \'tap\'',
        // No test starts before every file is loaded: tap would otherwise end the process's test as
        // soon as it fell idle with a teardown registered, while a file was still loading.
        'let loaded',
        't.before(() => new Promise(resolve => { loaded = resolve }))',
        ...batch.map(file => `await import(${JSON.stringify(String(pathToFileURL(`${root}${file}`)))})`),
        `t.setTimeout(${Math.min(BATCH_TIMEOUT_CAP_MS, batch.reduce((sum, file) => sum + timeLimitMs(file), 0))})`,
        'loaded()',
        ''
      ].join('\n'))
      batches.push(name)
    }
  }
  return batches
}

/** A free TCP port on 127.0.0.1. */
async function freePort () {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  server.close()
  return port
}

/**
 * The parallel lane's own Redis, while both lanes run: a redis-server on a free port at the lowest
 * priority. The rest of the suite puts heavy load on Redis (races a thousand times over, full
 * memory), and the service gives a Redis command 150 ms: in one shared server that load would delay
 * the timing files' commands and run at their priority. Resolves with its URL, or with undefined when
 * redis-server cannot be started (not installed): both lanes then share TEST_REDIS_URL or
 * 127.0.0.1:6379.
 */
async function startLaneRedis () {
  const port = await freePort()
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] })
  const ready = await new Promise(resolve => {
    let output = ''
    server.stdout.on('data', chunk => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve(true)
    })
    server.once('error', () => resolve(false))
    server.once('exit', () => resolve(false))
  })
  if (!ready) {
    server.kill()
    process.stderr.write('redis-server could not be started: both lanes share one Redis\n')
    return undefined
  }
  server.stdout.resume()
  try {
    setPriority(server.pid, LOWEST_PRIORITY)
  } catch {
    // As for the lane itself: the server then runs at the suite's priority.
  }
  process.once('exit', () => server.kill())
  // Interrupted, the run still stops the server on its way out (through 'exit').
  process.once('SIGINT', () => process.exit(130))
  process.once('SIGTERM', () => process.exit(143))
  return `redis://127.0.0.1:${port}`
}

// Side by side (`lanes`) the rest of the suite yields the CPU and Redis to the timing files, and the
// timing files that need the whole machine run last.
const together = group === 'lanes'
const alone = together ? files.filter(file => aloneFiles.has(file)) : []
// In this order one after the other (`sequential`). Timing files keep a process each, fresh: what a file
// before them left in the heap (and the pauses collecting it) would show up in their figures.
const lanes = [
  { name: 'parallel', files: files.filter(file => !timingFiles.has(file)), lowPriority: together },
  { name: 'timing', files: files.filter(file => timingFiles.has(file) && !alone.includes(file)) }
].filter(lane => (group === 'sequential' || group === 'lanes' || lane.name === group) && lane.files.length > 0)
for (const lane of lanes) if (lane.name === 'parallel') lane.files = batched(lane.name, lane.files)
if (lanes.length === 0 && alone.length === 0) {
  process.stderr.write('no test files selected\n')
  process.exit(1)
}
/**
 * tap builds its test class for the plugins .taprc names when a run starts and the last build was for
 * others, or there is none (as after `npm ci` when install scripts do not run). Two runs starting at
 * once would both build it, one under the other's test processes; side by side it is built here
 * first, when needed.
 */
function buildTapOnce () {
  const built = fileURLToPath(new URL('../node_modules/@tapjs/test/test-built/dist/esm/index.js', import.meta.url))
  const builtFor = existsSync(built) ? /export const signature = `([^`]*)`/.exec(readFileSync(built, 'utf8'))?.[1] : undefined
  const named = spawnSync(process.execPath, [tap, 'plugin', 'list'], { cwd: root, encoding: 'utf8' }).stdout
  const sorted = text => text.split('\n').map(line => line.trim()).filter(line => line !== '').sort().join('\n')
  if (builtFor !== undefined && sorted(builtFor) === sorted(named)) return
  const build = spawnSync(process.execPath, [tap, 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  if (build.status !== 0) {
    process.stderr.write('tap build failed\n')
    process.exit(build.status ?? 1)
  }
}

if (together && lanes.length === 2) {
  buildTapOnce()
  const redisUrl = await startLaneRedis()
  if (redisUrl !== undefined) lanes[0].env = { TEST_REDIS_URL: redisUrl }
}

const coverage = !options.includes('--disable-coverage')
const quietCoverage = coverage ? ['--coverage-report=none'] : []

/**
 * Runs one tap process. With a heading, its output is held and printed once it has finished, under
 * that heading, so the lanes' reports do not interleave. Resolves with its exit code and its closing
 * count line.
 */
function runTap (args, { env = {}, lowPriority = false, heading = undefined, quiet = false } = {}) {
  return new Promise(resolve => {
    const child = spawn(process.execPath, [tap, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    if (lowPriority) {
      try {
        setPriority(child.pid, LOWEST_PRIORITY)
      } catch (error) {
        process.stderr.write(`could not lower the parallel lane's CPU priority (${error.message}): the timing files share the CPU with it as equals\n`)
      }
    }
    let output = ''
    child.stdout.on('data', chunk => {
      if (heading === undefined && !quiet) process.stdout.write(chunk)
      output = heading === undefined ? (output + chunk.toString()).slice(-4096) : output + chunk.toString()
    })
    child.on('close', (code, signal) => {
      if (heading !== undefined && !quiet) process.stdout.write(`\n# ${heading}\n${output}`)
      const summary = [...output.matchAll(SUMMARY)].at(-1)?.[0]
      resolve({ code: code ?? (signal === null ? 1 : 128), summary })
    })
  })
}

const headed = lanes.length + (alone.length > 0 ? 1 : 0) > 1

/** Runs a lane's files in one tap run, over a list of their own. */
async function runLane ({ name, title, files: laneFiles, env, lowPriority }) {
  writeFileSync(`${laneDir}${name}.list`, `${laneFiles.join('\n')}\n`)
  const heading = headed ? `${title}: ${laneFiles.length} test processes` : undefined
  return { ...await runTap([`--save=${laneDir}${name}.list`, ...laneFiles, ...quietCoverage, ...options], { env, lowPriority, heading }), lane: name }
}

/** The files of a lane's run that did not pass: tap's --save list keeps those (and is gone when none). */
function notPassed (name) {
  const list = `${laneDir}${name}.list`
  return existsSync(list) ? readFileSync(list, 'utf8').split('\n').filter(line => line !== '') : []
}

let runs = []
if (together) runs.push(...await Promise.all(lanes.map(lane => runLane({ ...lane, title: `${lane.name} lane` }))))
else for (const lane of lanes) runs.push(await runLane({ ...lane, title: `${lane.name} lane` }))
// Side by side, a timing file that failed may have measured its neighbour: it runs again once both
// lanes are done, with the machine to itself, as it would one lane after the other. Its first failure
// stays in the timing lane's report above; its verdict is the second run.
const timingLane = lanes.find(lane => lane.name === 'timing')
const again = together && lanes.length === 2 && timingLane !== undefined ? notPassed('timing') : []
if (again.length > 0 || alone.length > 0) {
  const title = again.length === 0
    ? 'alone, after both lanes'
    : `alone, after both lanes, with ${again.length} timing file${again.length === 1 ? '' : 's'} that failed beside the other lane: ${again.join(', ')}`
  runs.push(await runLane({ name: 'alone', title, files: [...again, ...alone] }))
}
if (again.length > 0) {
  // The timing files' count from each one's last run (tap keeps every file's results under
  // .tap/test-results), in place of the timing lane's and the alone run's. Without coverage of its
  // own: a replay that finds none to report exits 1.
  const verdict = await runTap(['replay', '--disable-coverage', ...timingLane.files, ...alone], { quiet: true })
  runs = [...runs.filter(run => run.lane === 'parallel'), { ...verdict, lane: 'timing' }]
}
// The coverage report prints no count; it fails the run only when it fails itself.
if (coverage) {
  const reporters = taprc['coverage-report'] ?? ['text-summary']
  const report = await runTap(['report', ...reporters])
  if (report.code !== 0) runs.push({ ...report, summary: '' })
}

// One count for the whole suite: the lanes' counts added up, key by key.
const totals = new Map()
for (const { summary } of runs) {
  for (const [, key, value] of (summary ?? '').matchAll(/(\w+): (\d+)/g)) totals.set(key, (totals.get(key) ?? 0) + Number(value))
}
const failedRun = runs.find(run => run.code !== 0 || run.summary === undefined)
// A lane that printed no count (it crashed) counts as one failure.
const silent = runs.filter(run => run.summary === undefined).length
if (silent > 0) totals.set('fail', (totals.get('fail') ?? 0) + silent)
process.stdout.write(`\n# whole suite, ${runs.length === 1 ? 'one lane' : 'both lanes'}\n# { ${[...totals].map(([key, value]) => `${key}: ${value}`).join(', ')} }\n`)
process.exit(failedRun === undefined ? 0 : failedRun.code || 1)
