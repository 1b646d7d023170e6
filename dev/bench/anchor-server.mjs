// The anchors, measured under exactly the service's loads in the same run:
// - GET /chat-token: the least a JWT-checking token cache can do per request. Fastify + @fastify/jwt
//   (HS256) + a Map lookup, with pino request logging at info when ANCHOR_LOGGING=1.
// - GET /mint: the least a cache miss can do. The same verification, then one undici Pool call per
//   request to UPSTREAM_URL (the emulator), its JSON read, and the answer.
// The gap between an anchor and the service's matching scenario is what the service's own pipeline costs.
import process from 'node:process'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import { Pool } from 'undici'

const app = Fastify({ logger: process.env.ANCHOR_LOGGING === '1' ? { level: 'info' } : false })
await app.register(fastifyJwt, { secret: process.env.JWT_SECRET })
const tokens = new Map()
app.get('/', async () => ({ hello: 'world' }))
app.get('/chat-token', async request => {
  const claims = await request.jwtVerify()
  let token = tokens.get(claims.email)
  if (token === undefined) {
    token = `token-for-${claims.sub}`
    tokens.set(claims.email, token)
  }
  return { email: claims.email, token, expiresAt: '2026-01-01T00:00:00.000Z' }
})

if (process.env.UPSTREAM_URL !== undefined) {
  const pool = new Pool(process.env.UPSTREAM_URL, { connections: 128 })
  const headers = { authorization: `Bearer ${process.env.UPSTREAM_TOKEN}`, 'content-type': 'application/json' }
  app.get('/mint', async request => {
    const claims = await request.jwtVerify()
    const response = await pool.request({
      path: '/conversations/v3/visitor-identification/tokens/create',
      method: 'POST',
      headers,
      body: JSON.stringify({ email: claims.email, firstName: claims.given_name })
    })
    const { token } = await response.body.json()
    return { email: claims.email, token, expiresAt: new Date(Date.now() + 43_200_000).toISOString() }
  })
}
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
// A clean exit on SIGTERM, so `node --cpu-prof` (dev/bench/profile.ts --anchor) writes its profile.
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
