import { readFile } from 'node:fs/promises'
import type { BrowserContext, Request } from 'playwright-core'
import { browserHelperBundle } from '../browser-helper-bundle.js'

/**
 * A website and a HubSpot served from inside the browser (Playwright routes), for the helper's own
 * behaviour: each test scripts exactly what /chat-token answers and when, which a real service would
 * make slow or impossible (a 429 with a chosen Retry-After, a malformed 200, an expiry in ten minutes).
 * The HubSpot side is the emulator's real stand-in widget, checking tokens against `issued`.
 */

export const SITE = 'http://site.test'
export const HUBSPOT = 'http://hubspot.test'
const WIDGET_FILE = new URL('../../dev/hubspot-emulator/widget/widget.js', import.meta.url)

export interface TokenAnswer {
  status: number
  headers?: Record<string, string>
  body?: unknown
}

export interface RecordedRequest {
  method: string
  url: string
  at: number
  headers: Record<string, string>
}

export interface FakeSite {
  /** Token requests the page made, in order. */
  requests: RecordedRequest[]
  /** A 200 whose token the stand-in widget will find genuine for `email`. */
  identified: (email: string, options?: { expiresInMs?: number; token?: string }) => TokenAnswer
}

export const HELPER_AND_WIDGET = `<script src="/chat-identity.js"></script>
<script async src="${HUBSPOT}/__emulator/widget.js"></script>`

export function pageWith (head: string, body = ''): string {
  return `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">${head}</head><body>${body}</body></html>`
}

/**
 * Serves `html` at SITE/, the helper bundles, the stand-in widget and its token check; token requests
 * (GET and DELETE on any /chat-token or /api/ path) are answered by `answer(n, request)`, n counting from 0.
 */
export async function fakeSite (
  context: BrowserContext,
  html: string,
  answer: (n: number, request: Request) => TokenAnswer | 'network-error'
): Promise<FakeSite> {
  const { files } = await browserHelperBundle()
  const widget = await readFile(WIDGET_FILE, 'utf8')
  const issued = new Map<string, { email: string; expiresAt: string }>()
  const requests: RecordedRequest[] = []
  let tokenNumber = 0

  await context.route(`${SITE}/**`, async route => {
    const request = route.request()
    const path = new URL(request.url()).pathname
    if (path === '/') return route.fulfill({ contentType: 'text/html; charset=utf-8', body: html })
    if (path === '/chat-identity.js' || path === '/chat-identity.mjs') {
      return route.fulfill({ contentType: 'text/javascript; charset=utf-8', body: files[path === '/chat-identity.js' ? 'chat-identity.js' : 'chat-identity.mjs'] })
    }
    if (path === '/chat-token' || path.startsWith('/api/')) {
      const n = requests.length
      requests.push({ method: request.method(), url: request.url(), at: Date.now(), headers: await request.allHeaders() })
      const answered = answer(n, request)
      if (answered === 'network-error') return route.abort('connectionrefused')
      return route.fulfill({
        status: answered.status,
        headers: { date: new Date().toUTCString(), 'content-type': 'application/json', ...answered.headers },
        body: answered.body === undefined ? '' : JSON.stringify(answered.body)
      })
    }
    return route.fulfill({ status: 404, body: '' })
  })

  await context.route(`${HUBSPOT}/**`, async route => {
    const path = new URL(route.request().url()).pathname
    if (path === '/__emulator/widget.js') return route.fulfill({ contentType: 'text/javascript; charset=utf-8', body: widget })
    const found = issued.get(decodeURIComponent(path.replace('/__emulator/tokens/', '')))
    return route.fulfill({
      status: found === undefined ? 404 : 200,
      headers: { 'access-control-allow-origin': '*', 'content-type': 'application/json' },
      body: JSON.stringify(found ?? { error: 'not_found' })
    })
  })

  return {
    requests,
    identified: (email, options = {}) => {
      const token = options.token ?? `token-${++tokenNumber}-for-${email}`
      // The real HubSpot lifetime unless the test wants a short one.
      const expiresAt = new Date(Date.now() + (options.expiresInMs ?? 12 * 3600_000)).toISOString()
      issued.set(token, { email, expiresAt: new Date(Date.now() + 12 * 3600_000).toISOString() })
      return { status: 200, body: { email, token, expiresAt } }
    }
  }
}
