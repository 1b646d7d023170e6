// The second anchor: the least a JWT-checking token cache can do per request. Fastify +
// @fastify/jwt (HS256) + a Map lookup, with pino request logging at info when ANCHOR_LOGGING=1.
// Measured with the same load (the same rotating session JWTs) as the service's hit scenario, so the
// gap between the two is what the service's own pipeline costs.
import process from 'node:process'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'

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
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
