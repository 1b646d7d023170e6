import { WebSocket } from 'undici'

/**
 * A full garbage collection in a process started with `--inspect=127.0.0.1:<port>`, over the DevTools
 * protocol, and the heap left afterwards. The memory scenario uses it to tell what the cache really
 * holds from what V8 merely has not collected yet (nothing in production calls it).
 */
export async function collectGarbage (inspectPort: number): Promise<{ usedBytes: number }> {
  const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json() as Array<{ webSocketDebuggerUrl: string }>
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl)
  await new Promise((resolve, reject) => {
    socket.addEventListener('open', resolve, { once: true })
    socket.addEventListener('error', reject, { once: true })
  })
  let nextId = 0
  const call = (method: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const id = ++nextId
    const onMessage = (event: MessageEvent): void => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown>; error?: unknown }
      if (message.id !== id) return
      socket.removeEventListener('message', onMessage)
      if (message.error !== undefined) reject(new Error(JSON.stringify(message.error)))
      else resolve(message.result ?? {})
    }
    socket.addEventListener('message', onMessage)
    socket.send(JSON.stringify({ id, method }))
  })
  try {
    await call('HeapProfiler.enable')
    // Twice: the first pass can leave objects whose finalizers or weak callbacks free more on the second.
    await call('HeapProfiler.collectGarbage')
    await call('HeapProfiler.collectGarbage')
    const usage = await call('Runtime.getHeapUsage')
    return { usedBytes: Number(usage.usedSize) }
  } finally {
    socket.close()
  }
}
