import { WebSocket } from 'undici'

/**
 * The DevTools protocol of a process started with `--inspect=127.0.0.1:<port>`: the memory scenario
 * forces a full garbage collection through it, and the profiler records only the phase it measures
 * (nothing in production calls it).
 */
interface InspectorSession {
  call: (method: string, params?: Record<string, unknown>) => Promise<Record<string, unknown>>
  close: () => void
}

async function connect (inspectPort: number): Promise<InspectorSession> {
  const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json() as Array<{ webSocketDebuggerUrl: string }>
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true })
    socket.addEventListener('error', reject, { once: true })
  })
  let nextId = 0
  const call = (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const id = ++nextId
    const onMessage = (event: MessageEvent): void => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown>; error?: unknown }
      if (message.id !== id) return
      socket.removeEventListener('message', onMessage)
      if (message.error !== undefined) reject(new Error(JSON.stringify(message.error)))
      else resolve(message.result ?? {})
    }
    socket.addEventListener('message', onMessage)
    socket.send(JSON.stringify({ id, method, params }))
  })
  return { call, close: () => socket.close() }
}

/** Runs `use` with a session to the process, closed afterwards whatever happens. */
async function withSession<T> (inspectPort: number, use: (session: InspectorSession) => Promise<T>): Promise<T> {
  const session = await connect(inspectPort)
  try {
    return await use(session)
  } finally {
    session.close()
  }
}

/** A full garbage collection, and the heap left afterwards. */
export async function collectGarbage (inspectPort: number): Promise<{ usedBytes: number }> {
  return withSession(inspectPort, async session => {
    await session.call('HeapProfiler.enable')
    // Twice: the first pass can leave objects whose finalizers or weak callbacks free more on the second.
    await session.call('HeapProfiler.collectGarbage')
    await session.call('HeapProfiler.collectGarbage')
    const usage = await session.call('Runtime.getHeapUsage')
    return { usedBytes: Number(usage.usedSize) }
  })
}

/** A CPU profile (the `.cpuprofile` format) of the process while `work` runs, and what `work` returned. */
export async function cpuProfileDuring<T> (inspectPort: number, work: () => Promise<T>, samplingIntervalUs = 100): Promise<{ profile: unknown; result: T }> {
  return withSession(inspectPort, async session => {
    await session.call('Profiler.enable')
    await session.call('Profiler.setSamplingInterval', { interval: samplingIntervalUs })
    await session.call('Profiler.start')
    const result = await work()
    const { profile } = await session.call('Profiler.stop')
    return { profile, result }
  })
}

/**
 * A sampling heap profile (`.heapprofile`) of what the process allocates while `work` runs: with
 * `includeObjectsCollectedByMajorGC`/`MinorGC`, short-lived garbage counts too, which is what a
 * garbage collector's share of CPU comes from.
 */
export async function allocationsDuring<T> (inspectPort: number, work: () => Promise<T>, samplingIntervalBytes = 16_384): Promise<{ profile: unknown; result: T }> {
  return withSession(inspectPort, async session => {
    await session.call('HeapProfiler.enable')
    await session.call('HeapProfiler.startSampling', { samplingInterval: samplingIntervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    const result = await work()
    const { profile } = await session.call('HeapProfiler.stopSampling')
    return { profile, result }
  })
}
