import { once } from 'node:events'
import { type AddressInfo, createServer, type Socket, connect } from 'node:net'
import { SHARED_REDIS_URL } from './redis-helper.js'

/**
 * A TCP proxy a test controls, for putting faults between the service and a dependency (Redis):
 * - `pass`: bytes flow both ways as they come.
 * - `slow`: every chunk, each way, is held `delayMs` before it is passed on (order kept).
 * - `silent`: connections are accepted and bytes taken in, but nothing is passed on: like a network
 *   path that black-holes traffic. Held bytes go through, in order, if the mode turns back to pass or
 *   slow (a healed partition: TCP would have retransmitted them).
 * - `closed`: every connection is destroyed and new ones are cut as soon as they arrive.
 * No backpressure: test traffic is small, and a lane only ever holds what a few seconds of it sent.
 */
export type ProxyMode = { kind: 'pass' } | { kind: 'slow'; delayMs: number } | { kind: 'silent' } | { kind: 'closed' }

type Teardown = { teardown: (fn: () => unknown) => void }

export interface TcpProxy {
  readonly host: string
  readonly port: number
  mode: () => ProxyMode
  setMode: (mode: ProxyMode) => void
  /** Where connections made from now on go (as after a failover; cut the open ones with `closed`). */
  retarget: (next: { host: string; port: number }) => void
  /** Client connections currently open through the proxy. */
  connections: () => number
  close: () => Promise<void>
}

/** One direction of one connection: chunks in arrival order, each with the moment it may leave. */
class Lane {
  readonly #queue: Array<{ at: number; chunk: Buffer }> = []
  #timer: NodeJS.Timeout | undefined

  constructor (private readonly to: Socket, private readonly mode: () => ProxyMode) {}

  push (chunk: Buffer): void {
    const mode = this.mode()
    this.#queue.push({ at: Date.now() + (mode.kind === 'slow' ? mode.delayMs : 0), chunk })
    this.drain()
  }

  /** Writes every chunk that may leave now, in order; a timer comes back for the next one. */
  drain (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const mode = this.mode()
    if (mode.kind === 'silent' || mode.kind === 'closed' || this.to.connecting || this.to.destroyed) return
    const now = Date.now()
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!
      // Held through a silent spell or a slow one that has ended: it goes now, still behind its elders.
      if (mode.kind === 'slow' && head.at > now) {
        this.#timer = setTimeout(() => this.drain(), head.at - now)
        return
      }
      this.#queue.shift()
      this.to.write(head.chunk)
    }
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#queue.length = 0
  }
}

export async function startTcpProxy (t: Teardown, target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = { kind: 'pass' }
  let upstreamTarget = target
  const pairs = new Set<{ client: Socket; upstream: Socket; lanes: Lane[] }>()

  const server = createServer(client => {
    if (mode.kind === 'closed') {
      client.destroy()
      return
    }
    const upstream = connect(upstreamTarget.port, upstreamTarget.host)
    const toUpstream = new Lane(upstream, () => mode)
    const toClient = new Lane(client, () => mode)
    const pair = { client, upstream, lanes: [toUpstream, toClient] }
    pairs.add(pair)
    const end = (): void => {
      if (!pairs.delete(pair)) return
      for (const lane of pair.lanes) lane.stop()
      client.destroy()
      upstream.destroy()
    }
    client.on('data', (chunk: Buffer) => toUpstream.push(chunk))
    upstream.on('data', (chunk: Buffer) => toClient.push(chunk))
    // Bytes the client sent before the upstream connection was up leave once it is.
    upstream.on('connect', () => toUpstream.drain())
    for (const socket of [client, upstream]) {
      socket.on('error', end)
      socket.on('close', end)
      // A FIN either way ends the pair: half-open pairs are not a mode this proxy offers.
      socket.on('end', end)
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  const proxy: TcpProxy = {
    host: '127.0.0.1',
    port,
    mode: () => mode,
    setMode: next => {
      mode = next
      if (next.kind === 'closed') {
        for (const pair of [...pairs]) {
          pair.client.destroy()
          pair.upstream.destroy()
        }
        return
      }
      for (const pair of pairs) for (const lane of pair.lanes) lane.drain()
    },
    retarget: next => { upstreamTarget = next },
    connections: () => pairs.size,
    close: async () => {
      mode = { kind: 'closed' }
      for (const pair of [...pairs]) {
        pair.client.destroy()
        pair.upstream.destroy()
      }
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
  t.teardown(() => proxy.close())
  return proxy
}

/**
 * The shared test Redis reached through a proxy the test controls: same credentials and database,
 * another address. `url` is what a service or link under test is given as REDIS_URL.
 */
export async function sharedRedisThroughProxy (t: Teardown): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(SHARED_REDIS_URL)
  const proxy = await startTcpProxy(t, { host: target.hostname, port: Number(target.port || 6379) })
  const viaProxy = new URL(SHARED_REDIS_URL)
  viaProxy.hostname = proxy.host
  viaProxy.port = String(proxy.port)
  return { proxy, url: viaProxy.href }
}
