// The anchor every ratio is taken against: a bare Fastify JSON route, no logging, in its own process.
import process from 'node:process'
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
