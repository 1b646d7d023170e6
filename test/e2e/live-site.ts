import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { browserHelperBundle } from '../browser-helper-bundle.js'

/**
 * A website on a real local HTTP server, for what Playwright's routes cannot do: a /chat-token answer
 * whose headers arrive and whose body never ends, an answer held until the test releases it, a
 * HubSpot SDK that arrives when the test says, a page on the same origin without the helper. It plays
 * the service's part too: the `session` cookie names the visitor, and one token per visitor is kept
 * (as the service's cache does) until DELETE /chat-token or `expire()` drops it. HubSpot's side is the
 * emulator's stand-in widget, served from this origin and checking tokens against `issued` here.
 */

const WIDGET_FILE = new URL('../../dev/hubspot-emulator/widget/widget.js', import.meta.url)
const TWELVE_HOURS = 12 * 3600_000

export const SESSION_COOKIE = 'session'

/** How /chat-token answers one request. */
export type TokenReply =
  /** The service's answer for the request's session cookie (401 without one). */
  | 'session'
  /** 200 headers and the first bytes of a body that never ends. */
  | 'stall-body'
  /** Nothing at all, ever. */
  | 'no-answer'
  /** Held until `release()`; then the service's answer for the cookie the request carried. */
  | 'held'
  | { status: number; headers?: Record<string, string>; body?: unknown }

export interface TokenRequest {
  method: string
  at: number
  session: string
  /** For 'held' requests: answers it. */
  release?: () => void
}

export interface LiveSite {
  url: string
  tokenUrl: string
  /** The helper's BroadcastChannel name on this site (the default token URL). */
  channelName: string
  requests: TokenRequest[]
  /** Decides each /chat-token answer (n counts every GET and DELETE from 0); 'session' unless set. */
  reply: (n: number, request: TokenRequest) => TokenReply
  /** Whether answers carry a Date header (a cross-origin page cannot read it unless exposed). */
  sendDate: boolean
  /** Pages by path; '/' is the helper, the widget and `ChatIdentity.start()` unless replaced. */
  pages: Map<string, string>
  /** The token the service would give `email` now (minting one when none is kept). */
  tokenFor: (email: string) => { token: string; expiresAt: string }
  /** Drops the kept token of `email`: the next answer mints a new one. */
  expire: (email: string) => void
  /** Holds GET /hs/widget.js until the returned function is called. */
  holdWidget: () => () => void
  /** Bodies started with 'stall-body' so far. */
  stalled: () => number
}

export const WIDGET_URL = '/hs/widget.js'
export const HELPER_AND_WIDGET = `<script src="/chat-identity.js"></script><script async src="${WIDGET_URL}"></script>`

export function pageWith (head: string, body = ''): string {
  return `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">${head}</head><body>${body}</body></html>`
}

function sessionOf (request: IncomingMessage): string {
  const match = new RegExp(`(?:^|;\\s*)${SESSION_COOKIE}=([^;]*)`).exec(request.headers.cookie ?? '')
  return decodeURIComponent(match?.[1] ?? '')
}

export async function liveSite (t: { teardown: (fn: () => unknown) => void }): Promise<LiveSite> {
  const { files } = await browserHelperBundle()
  const widget = await readFile(WIDGET_FILE, 'utf8')
  const kept = new Map<string, { token: string; expiresAt: string }>()
  const issued = new Map<string, { email: string; expiresAt: string }>()
  let minted = 0
  let stalledBodies = 0
  let widgetGate: Promise<void> = Promise.resolve()

  const tokenFor = (email: string): { token: string; expiresAt: string } => {
    let found = kept.get(email)
    if (found === undefined) {
      // Distinct milliseconds per token, as HubSpot's issue times would be.
      const expiresAt = new Date(Date.now() + TWELVE_HOURS + ++minted).toISOString()
      found = { token: `token-${minted}-for-${email}`, expiresAt }
      kept.set(email, found)
      issued.set(found.token, { email, expiresAt })
    }
    return found
  }

  const json = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    response.sendDate = site.sendDate
    response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers })
    response.end(body === undefined ? '' : JSON.stringify(body))
  }

  const sessionAnswer = (response: ServerResponse, method: string, session: string): void => {
    if (session === '') return json(response, 401, { code: 'missing_token' })
    if (method === 'DELETE') {
      kept.delete(session)
      return json(response, 204, undefined)
    }
    json(response, 200, { email: session, ...tokenFor(session) })
  }

  const server = createServer((request, response) => {
    void (async () => {
      const path = new URL(request.url ?? '/', 'http://x').pathname
      if (path === '/chat-identity.js' || path === '/chat-identity.mjs') {
        response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' })
        return response.end(files[path === '/chat-identity.js' ? 'chat-identity.js' : 'chat-identity.mjs'])
      }
      if (path === WIDGET_URL) {
        await widgetGate
        response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' })
        return response.end(widget)
      }
      if (path.startsWith('/__emulator/tokens/')) {
        const found = issued.get(decodeURIComponent(path.slice('/__emulator/tokens/'.length)))
        return json(response, found === undefined ? 404 : 200, found ?? { error: 'not_found' })
      }
      if (path === '/chat-token') {
        const session = sessionOf(request)
        const recorded: TokenRequest = { method: request.method ?? 'GET', at: Date.now(), session }
        const n = site.requests.push(recorded) - 1
        const reply = site.reply(n, recorded)
        if (reply === 'session') return sessionAnswer(response, recorded.method, session)
        if (reply === 'no-answer') return
        if (reply === 'held') {
          recorded.release = () => sessionAnswer(response, recorded.method, session)
          return
        }
        if (reply === 'stall-body') {
          response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          response.write('{"email":')
          stalledBodies++
          return
        }
        return json(response, reply.status, reply.body, reply.headers)
      }
      const html = site.pages.get(path)
      if (html === undefined) {
        response.writeHead(404)
        return response.end()
      }
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      response.end(html)
    })()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise(resolve => server.close(resolve))
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const site: LiveSite = {
    url,
    tokenUrl: `${url}/chat-token`,
    channelName: `chat-identity:${url}/chat-token`,
    requests: [],
    reply: () => 'session',
    sendDate: true,
    pages: new Map([['/', pageWith(`${HELPER_AND_WIDGET}<script>ChatIdentity.start()</script>`)], ['/plain', pageWith('')]]),
    tokenFor,
    expire: email => { kept.delete(email) },
    holdWidget: () => {
      let release!: () => void
      widgetGate = new Promise(resolve => { release = resolve })
      return release
    },
    stalled: () => stalledBodies
  }
  return site
}
