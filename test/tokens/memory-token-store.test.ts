import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { Deadline } from '../../src/deadline.js'
import { createMemoryTokenStore } from '../../src/tokens/memory-token-store.js'
import { identityKey } from '../../src/auth/identity.js'
import { manualClock } from '../helper.js'

const HOUR_MS = 3_600_000

t.test('the LRU keeps at most maxEntries, dropping the least recently used', async t => {
  const clock = manualClock()
  const store = createMemoryTokenStore({ maxEntries: 3, ttlMs: HOUR_MS, clock })
  const deadline = new Deadline(1000, clock)
  const keys = ['a@x.io', 'b@x.io', 'c@x.io', 'd@x.io'].map(email => identityKey({ email }))
  for (const key of keys.slice(0, 3)) await store.mintOnce(key, deadline, async () => ({ token: `t-${key.email}`, issuedAt: clock.now() }))
  t.ok(await store.lookup(keys[0]!), 'a is used, so b is now the oldest')
  await store.mintOnce(keys[3]!, deadline, async () => ({ token: 't-d', issuedAt: clock.now() }))
  t.equal(store.size, 3)
  t.equal(await store.lookup(keys[1]!), undefined, 'b was evicted')
  for (const key of [keys[0]!, keys[2]!, keys[3]!]) t.ok(await store.lookup(key), `${key.email} kept`)
})

t.test('a token is reused while younger than the TTL, then dropped', async t => {
  const clock = manualClock()
  const store = createMemoryTokenStore({ maxEntries: 10, ttlMs: 6 * HOUR_MS, clock })
  const key = identityKey({ email: 'ada@example.com' })
  const issuedAt = clock.now()
  await store.mintOnce(key, new Deadline(1000, clock), async () => ({ token: 'tok', issuedAt }))
  clock.advance(6 * HOUR_MS - 1)
  t.same(await store.lookup(key), { token: 'tok', issuedAt }, 'issuedAt is kept, so expiresAt stays true')
  clock.advance(1)
  t.equal(await store.lookup(key), undefined)
  t.equal(store.size, 0, 'the expired entry no longer takes memory')
})

t.test('another name for the same email is a miss, and its token replaces the old one', async t => {
  const clock = manualClock()
  const store = createMemoryTokenStore({ maxEntries: 10, ttlMs: HOUR_MS, clock })
  const ada = identityKey({ email: 'ada@example.com', firstName: 'Ada' })
  const renamed = identityKey({ email: 'ada@example.com', firstName: 'Augusta' })
  await store.mintOnce(ada, new Deadline(1000, clock), async () => ({ token: 'first', issuedAt: clock.now() }))
  t.equal(await store.lookup(renamed), undefined)
  await store.mintOnce(renamed, new Deadline(1000, clock), async () => ({ token: 'second', issuedAt: clock.now() }))
  t.equal((await store.lookup(renamed))?.token, 'second')
  t.equal(await store.lookup(ada), undefined)
  t.equal(store.size, 1, 'one entry per email')
  await store.forget('ada@example.com')
  t.equal(await store.lookup(renamed), undefined, 'forget needs the email only')
})

t.test('100,000 entries take well under 60 MB', async t => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const clock = manualClock()
  const deadline = new Deadline(1000, clock)
  // Strings as production sees them: flat, from parsed JSON (the JWT's claims, HubSpot's answer).
  const fill = async (store: ReturnType<typeof createMemoryTokenStore>): Promise<void> => {
    for (let i = 0; i < 100_000; i++) {
      const { email, token } = JSON.parse(JSON.stringify({
        email: `person.number.${i}@example-company.com`,
        // Real tokens look like JWTs: 200 characters is a generous stand-in.
        token: `eyJhbGciOiJIUzI1NiJ9.${i.toString(36).padStart(8, '0')}${'x'.repeat(170)}`
      })) as { email: string; token: string }
      await store.mintOnce(identityKey({ email, firstName: 'Ada', lastName: 'Lovelace' }), deadline, async () => ({ token, issuedAt: clock.now() }))
    }
  }
  gc()
  const before = process.memoryUsage()
  const store = createMemoryTokenStore({ maxEntries: 100_000, ttlMs: HOUR_MS, clock })
  await fill(store)
  gc()
  const after = process.memoryUsage()
  const heapMb = (after.heapUsed - before.heapUsed) / 1e6
  t.equal(store.size, 100_000)
  t.ok(heapMb < 40, `heap grew ${heapMb.toFixed(1)} MB`)
  // RSS inside the test runner (coverage, loaders, garbage of the fill) is too noisy to assert; docs/performance.md
  // gives a clean measurement.
  t.comment(`RSS grew ${((after.rss - before.rss) / 1e6).toFixed(1)} MB`)
})
