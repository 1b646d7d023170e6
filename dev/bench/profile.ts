import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { allocationsDuring, cpuProfileDuring } from './inspector.js'
import { runLoad } from './load.js'
import { sessionKeys, signMany } from './sessions.js'
import { freePort } from './processes.js'
import { startAnchor, startEmulator, startRedis, startService } from './stack.js'

/**
 * A CPU profile of the service under one scenario's load, summarised by self time:
 *   node --import tsx dev/bench/profile.ts --scenario hit|miss [--redis] [--allocations] [--duration 10] [--dir /tmp/prof]
 * Only the measured load is recorded (over the inspector; a hit's warm-up misses are left out). The
 * .cpuprofile is left in --dir for a flame graph (Chrome DevTools or speedscope open it). With
 * --allocations, what the load allocated (garbage included) by allocating function instead, and a
 * .heapprofile.
 */
const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'hit' },
    // The miss anchor (dev/bench/anchor-server.mjs /mint) instead of the service, for a side-by-side look.
    anchor: { type: 'boolean', default: false },
    // Redis mode: the service on a redis-server of the bench's own (empty, no persistence).
    redis: { type: 'boolean', default: false },
    allocations: { type: 'boolean', default: false },
    duration: { type: 'string', default: '10' },
    dir: { type: 'string', default: '/tmp/chat-token-profile' },
    top: { type: 'string', default: '40' },
    // Comma-separated function names whose inclusive time (self plus callees) is also reported.
    inclusive: { type: 'string', default: 'verifySession,visitorOf,limitCaller,tokenFor,createVisitorToken,attempt,acquireSlot,mintOnce,runPreParsing,onResponse,routeHandler' }
  }
})
const durationS = Number(values.duration)
const dir = values.dir
const emulator = await startEmulator()
const redis = values.redis ? await startRedis() : undefined
const keys = sessionKeys('HS256')
const inspectPort = await freePort()
const profiling = [`--inspect=127.0.0.1:${inspectPort}`]
const service = values.anchor
  ? await startAnchor(keys.env, { logging: false, upstreamUrl: emulator.url, nodeArgs: profiling })
  : await startService({ ...keys.env, HUBSPOT_BASE_URL: emulator.url, HUBSPOT_RATE_LIMIT: '1000000/1s', ...(redis === undefined ? {} : { REDIS_URL: redis.url }) }, 'service', profiling)
const url = `${service.url}${values.anchor ? '/mint' : '/chat-token'}`
let recorded: unknown
async function profiled<T> (work: () => Promise<T>): Promise<T> {
  const { profile, result } = await (values.allocations ? allocationsDuring(inspectPort, work) : cpuProfileDuring(inspectPort, work))
  recorded = profile
  mkdirSync(dir, { recursive: true })
  writeFileSync(file, JSON.stringify(profile))
  return result
}
const file = `${dir}/${values.scenario}${values.redis ? '-redis' : ''}${values.anchor ? '-anchor' : ''}-${Date.now()}.${values.allocations ? 'heapprofile' : 'cpuprofile'}`
try {
  if (values.scenario === 'hit') {
    const tokens = signMany(keys, 10_000)
    await runLoad({ url, connections: 50, amount: tokens.length, headersFor: n => ({ authorization: `Bearer ${tokens[n]}` }) })
    const result = await profiled(() => runLoad({ url, connections: 10, durationS, rotate: tokens.map(token => ({ authorization: `Bearer ${token}` })) }))
    process.stdout.write(`hit: ${result.rps.toFixed(0)} req/s, load generator ${(result.loadCpuShare * 100).toFixed(0)} %\n`)
  } else {
    const tokens = signMany(keys, durationS * 2000, 'profile-miss')
    const result = await profiled(() => runLoad({ url, connections: 10, amount: tokens.length, headersFor: n => ({ authorization: `Bearer ${tokens[n]}` }) }))
    process.stdout.write(`miss: ${result.rps.toFixed(0)} req/s, load generator ${(result.loadCpuShare * 100).toFixed(0)} %\n`)
  }
} finally {
  const exited = new Promise(resolve => service.process.child.once('exit', resolve))
  service.process.child.kill('SIGTERM')
  await exited
  await emulator.process.stop()
  await redis?.process.stop()
}

interface HeapNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: HeapNode[] }
/** A frame's file, from its package or the checkout on. */
const where = (url: string): string => url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '')
if (values.allocations) {
  const bytes = new Map<string, number>()
  let allocated = 0
  const visit = (node: HeapNode): void => {
    const name = `${node.callFrame.functionName || '(anonymous)'} ${where(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`
    bytes.set(name, (bytes.get(name) ?? 0) + node.selfSize)
    allocated += node.selfSize
    for (const child of node.children) visit(child)
  }
  visit((recorded as { head: HeapNode }).head)
  const lines = [...bytes].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))
    .map(([name, size]) => `${(size / allocated * 100).toFixed(1).padStart(5)} %  ${(size / 2 ** 20).toFixed(1).padStart(7)} MiB  ${name}`)
  process.stdout.write(`allocations ${file}: ${(allocated / 2 ** 20).toFixed(0)} MiB sampled\n${lines.join('\n')}\n`)
  process.exit(0)
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

const profile = recorded as Profile
const byId = new Map(profile.nodes.map(node => [node.id, node]))
const selfUs = new Map<string, number>()
const byPackage = new Map<string, number>()
let total = 0
profile.samples.forEach((id, index) => {
  const node = byId.get(id)!
  const delta = profile.timeDeltas[index] ?? 0
  total += delta
  const source = where(node.callFrame.url)
  const name = `${node.callFrame.functionName || '(anonymous)'} ${source}:${node.callFrame.lineNumber + 1}`
  selfUs.set(name, (selfUs.get(name) ?? 0) + delta)
  const pkg = source === '' ? node.callFrame.functionName : source.startsWith('@') ? source.split('/').slice(0, 2).join('/') : source.split('/')[0]!
  byPackage.set(pkg!, (byPackage.get(pkg!) ?? 0) + delta)
})
// Inclusive time: each sample counts once for every distinct watched function on its stack.
const watched = new Set(values.inclusive.split(','))
const parentOf = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
const inclusiveUs = new Map<string, number>()
profile.samples.forEach((id, index) => {
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const name = byId.get(at)!.callFrame.functionName
    if (watched.has(name) && !seen.has(name)) {
      seen.add(name)
      inclusiveUs.set(name, (inclusiveUs.get(name) ?? 0) + (profile.timeDeltas[index] ?? 0))
    }
  }
})
const top = (map: Map<string, number>, count: number): string =>
  [...map].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, us]) => `${(us / total * 100).toFixed(1).padStart(5)} %  ${name}`).join('\n')
process.stdout.write(`profile ${file}\n\nby package or file:\n${top(byPackage, 25)}\n\nby function (self):\n${top(selfUs, Number(values.top))}\n\ninclusive:\n${top(inclusiveUs, watched.size)}\n`)
