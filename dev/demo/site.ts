import fastifyCookie from '@fastify/cookie'
import { createSigner, createVerifier } from 'fast-jwt'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { request as upstreamRequest } from 'undici'
import { demoPage } from './page.js'

/**
 * The demo website: its page, a login that puts a demo session JWT in an HttpOnly cookie, a logout,
 * and /chat-token plus /chat-identity.js routed to the chat-token service, as a load balancer would
 * route them. The browser therefore sees one origin: the cookie goes along and no CORS is involved.
 */

export const SESSION_COOKIE = 'demo_session'
const SESSION_LIFETIME_S = 12 * 60 * 60
/** Paths the site hands to the service, untouched. */
const SERVICE_PATHS = ['/chat-token', '/chat-identity.js', '/chat-identity.mjs']
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'])
const EMAIL = /^[^\s@"<>]+@[^\s@"<>]+\.[^\s@"<>]+$/

export interface DemoSiteOptions {
  serviceUrl: string
  emulatorUrl: string
  jwtSecret: string
}

export interface DemoSite {
  app: FastifyInstance
  /** Signs a demo session JWT for `email`, as the login does. */
  sessionFor: (email: string) => string
  /** How many requests the site routed to the service, by `METHOD /path`. */
  routed: (method: string, path: string) => number
}

export async function createDemoSite (options: DemoSiteOptions): Promise<DemoSite> {
  const sign = createSigner({ key: options.jwtSecret, expiresIn: SESSION_LIFETIME_S * 1000 })
  const verify = createVerifier({ key: options.jwtSecret })
  const sessionFor = (email: string): string => sign({ sub: `demo:${email}`, email, email_verified: true })
  const counts = new Map<string, number>()

  const app = Fastify({ logger: false })
  await app.register(fastifyCookie)
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))))
  })

  function signedInEmail (request: FastifyRequest): string | undefined {
    const cookie = request.cookies[SESSION_COOKIE]
    if (cookie === undefined) return undefined
    try {
      const claims = verify(cookie) as { email?: unknown }
      return typeof claims.email === 'string' ? claims.email : undefined
    } catch {
      return undefined
    }
  }

  /** Forms get a redirect back to the page; the page's own fetch calls ask for JSON. */
  const done = (request: FastifyRequest, reply: FastifyReply): FastifyReply =>
    (request.headers.accept ?? '').includes('application/json') ? reply.code(204).send() : reply.redirect('/', 303)

  app.get('/', async (request, reply) => {
    return reply
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(demoPage({ email: signedInEmail(request), emulatorUrl: options.emulatorUrl }))
  })

  app.post<{ Body: { email?: unknown } | undefined }>('/login', async (request, reply) => {
    const email = String(request.body?.email ?? '').trim().toLowerCase()
    if (!EMAIL.test(email) || email.length > 254) return reply.code(400).type('text/plain').send('a valid email, please')
    reply.setCookie(SESSION_COOKIE, sessionFor(email), { httpOnly: true, sameSite: 'lax', path: '/', maxAge: SESSION_LIFETIME_S })
    return done(request, reply)
  })

  app.post('/logout', async (request, reply) => {
    reply.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', path: '/' })
    return done(request, reply)
  })

  for (const path of SERVICE_PATHS) {
    app.route({ method: path === '/chat-token' ? ['GET', 'DELETE'] : ['GET'], url: path, handler: routeToService })
  }

  async function routeToService (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const key = `${request.method} ${request.url.split('?', 1)[0]}`
    counts.set(key, (counts.get(key) ?? 0) + 1)
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = Array.isArray(value) ? value.join(', ') : value
    }
    // Like a load balancer: the Host stays the site's (the service's cookie origin check compares
    // Origin with it), and the client's address travels in X-Forwarded-For.
    headers['x-forwarded-for'] = request.ip
    headers['x-forwarded-proto'] = request.protocol
    const upstream = await upstreamRequest(options.serviceUrl + request.url, {
      method: request.method as 'GET' | 'HEAD' | 'DELETE',
      headers
    })
    reply.code(upstream.statusCode)
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) reply.header(name, value)
    }
    return reply.send(upstream.body)
  }

  return { app, sessionFor, routed: (method, path) => counts.get(`${method} ${path}`) ?? 0 }
}
