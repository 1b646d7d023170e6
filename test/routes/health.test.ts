import t from 'tap'
import { baseEnv, build } from '../helper.js'

t.test('/healthz is 200 while the process runs; /readyz turns 503 once draining', async t => {
  const lifecycle = { draining: false }
  const service = await build(t, baseEnv(undefined), { lifecycle })
  const health = await service.get('/healthz')
  t.equal(health.status, 200)
  t.same(health.json(), { status: 'ok' })
  const ready = await service.get('/readyz')
  t.equal(ready.status, 200)
  t.equal(ready.json().status, 'ready')
  t.same((ready.json().checks as Record<string, string>).shutdown, 'ok')

  lifecycle.draining = true
  const draining = await service.get('/readyz')
  t.equal(draining.status, 503)
  t.equal(draining.json().status, 'draining')
  t.equal((await service.get('/healthz')).status, 200, 'liveness is unaffected by draining')
})
