/* global process, URL */
// `npm test` runs `node scripts/test-group.mjs all`: every test file, in two tap runs. First the
// parallel group (every file not listed under `serial:` in .taprc), two at a time; then the serial
// group, each file alone. In one tap run the two would interleave (tap orders files by name), and each
// serial file would first wait for every file running beside it to finish, a core idle meanwhile.
// Coverage from both runs is reported once at the end, followed by one count for the whole suite in
// tap's own form (`# { total: N, pass: P, ... }`, which .ci/run reads).
//
// `npm run test:parallel` / `npm run test:serial` run one of the groups. Further arguments are tap
// options for each run, e.g. `npm test -- --disable-coverage --exclude 'test/e2e/**'`; to run some
// files, name them to tap itself (`npx tap test/routes/health.test.ts`).
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

// The project is the working directory (npm runs scripts from the package root); tap is this one's.
const root = `${process.cwd()}/`
const [group, ...options] = process.argv.slice(2)
if (group !== 'all' && group !== 'serial' && group !== 'parallel') {
  process.stderr.write('usage: node scripts/test-group.mjs all|serial|parallel [tap options]\n')
  process.exit(2)
}
const taprc = parse(readFileSync(`${root}.taprc`, 'utf8'))
const serial = taprc.serial ?? []
const missing = serial.filter(path => !existsSync(`${root}${path}`))
if (missing.length > 0) {
  process.stderr.write(`.taprc lists serial files that do not exist: ${missing.join(', ')}\n`)
  process.exit(1)
}
const groupArgs = {
  serial: serial,
  parallel: serial.map(path => `--exclude=${path}`)
}

const tap = fileURLToPath(new URL('../node_modules/tap/dist/esm/run.mjs', import.meta.url))
const SUMMARY = /^# \{ total: .*\}\s*$/gm

/** Runs tap, passing its output through; resolves with its exit code and its closing count line. */
function runTap (args) {
  return new Promise(resolve => {
    const child = spawn(process.execPath, [tap, ...args], { cwd: root, stdio: ['inherit', 'pipe', 'inherit'] })
    let tail = ''
    child.stdout.on('data', chunk => {
      process.stdout.write(chunk)
      tail = (tail + chunk.toString()).slice(-4096)
    })
    child.on('close', (code, signal) => {
      const summary = [...tail.matchAll(SUMMARY)].at(-1)?.[0]
      resolve({ code: code ?? (signal === null ? 1 : 128), summary })
    })
  })
}

if (group !== 'all') {
  const { code } = await runTap([...groupArgs[group], ...options])
  process.exit(code)
}

const coverageDir = `${root}.tap/coverage`
const keptCoverage = `${root}.tap/coverage-parallel`
const coverage = !options.includes('--disable-coverage')
const quietCoverage = coverage ? ['--coverage-report=none'] : []

rmSync(keptCoverage, { recursive: true, force: true })
const runs = [await runTap([...groupArgs.parallel, ...quietCoverage, ...options])]
// The second run starts by clearing .tap/coverage: the first run's files wait beside it.
if (existsSync(coverageDir)) renameSync(coverageDir, keptCoverage)
runs.push(await runTap([...groupArgs.serial, ...quietCoverage, ...options]))
if (existsSync(keptCoverage)) {
  mkdirSync(coverageDir, { recursive: true })
  for (const file of readdirSync(keptCoverage)) renameSync(`${keptCoverage}/${file}`, `${coverageDir}/${file}`)
  rmSync(keptCoverage, { recursive: true, force: true })
}
if (coverage) {
  const reporters = taprc['coverage-report'] ?? ['text-summary']
  runs.push({ ...await runTap(['report', ...reporters]), summary: '' })
}

// One count for the whole suite: the two runs' counts added up, key by key.
const totals = new Map()
for (const { summary } of runs) {
  for (const [, key, value] of (summary ?? '').matchAll(/(\w+): (\d+)/g)) totals.set(key, (totals.get(key) ?? 0) + Number(value))
}
const failedRun = runs.find(run => run.code !== 0 || run.summary === undefined)
if (runs.slice(0, 2).some(run => run.summary === undefined)) totals.set('fail', (totals.get('fail') ?? 0) + 1)
process.stdout.write(`\n# whole suite, both runs\n# { ${[...totals].map(([key, value]) => `${key}: ${value}`).join(', ')} }\n`)
process.exit(failedRun === undefined ? 0 : failedRun.code || 1)
