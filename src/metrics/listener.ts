import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

export interface MetricsListener {
  url: string
  close: () => Promise<void>
}

const notFound = JSON.stringify({
  type: 'urn:chat-token:problem:not_found', title: 'Not found', status: 404, detail: 'Only GET /metrics is served here', code: 'not_found'
})

/**
 * `GET /metrics` on its own port, so the public listener (and the load balancer in front of it) never
 * exposes it. A plain http server: it has one route and must keep answering while the app drains.
 */
export async function startMetricsListener (registry: Registry, { port, host }: { port: number; host: string }): Promise<MetricsListener> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '').split('?', 1)[0]
    if (path !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'application/problem+json', 'cache-control': 'no-store' }).end(notFound)
      return
    }
    registry.metrics().then(
      text => {
        response.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
        response.end(request.method === 'HEAD' ? undefined : text)
      },
      () => {
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n')
      }
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${hostForUrl}:${address.port}`,
    close: () => new Promise<void>(resolve => {
      server.close(() => resolve())
      // Prometheus keeps its scrape connection alive; an idle socket must not hold the exit.
      server.closeAllConnections()
    })
  }
}
