import t from 'tap'
import { createCacheCrypto } from '../../src/tokens/cache-crypto.js'

const ENTRY = { token: 'identification-token-of-ada', issuedAt: Date.parse('2026-12-05T12:00:00Z'), fingerprint: 'fp-1' }

t.test('sealed entries open only under their own name and bytes, with or without an owner', async t => {
  const crypto = createCacheCrypto('key material one')
  const owner = {}
  const sealed = crypto.seal('ct:v1:t:abc', ENTRY)
  t.same(crypto.open('ct:v1:t:abc', sealed), ENTRY)
  t.same(crypto.open('ct:v1:t:abc', sealed, owner), ENTRY)
  t.equal(crypto.open('ct:v1:t:other', sealed, owner), undefined, 'the same bytes under another name')
  const flipped = Buffer.from(sealed)
  flipped[20] = flipped[20]! ^ 1
  t.equal(crypto.open('ct:v1:t:abc', flipped, owner), undefined, 'one byte changed')
  t.equal(crypto.open('ct:v1:t:abc', sealed.subarray(0, 20), owner), undefined, 'too short')
  t.same(crypto.open('ct:v1:t:abc', sealed, owner), ENTRY, 'and the original still opens')
})

t.test('an owner\'s value is opened once while its bytes, name and key ring stay the same', async t => {
  const crypto = createCacheCrypto('key material one')
  const owner = {}
  const sealed = crypto.seal('ct:v1:t:abc', ENTRY)
  const first = crypto.open('ct:v1:t:abc', sealed, owner)
  t.equal(crypto.open('ct:v1:t:abc', Buffer.from(sealed), owner), first, 'the same entry, not opened again')
  t.ok(Object.isFrozen(first), 'shared, so frozen')
  t.not(crypto.open('ct:v1:t:abc', sealed, {}), first, 'another owner opens its own')
  const resealed = crypto.seal('ct:v1:t:abc', { ...ENTRY, token: 'a newer token' })
  t.equal(crypto.open('ct:v1:t:abc', resealed, owner)?.token, 'a newer token', 'new bytes are opened')
})

t.test('the bytes an owner\'s open is kept for are a copy: changing the reply buffer afterwards changes nothing', async t => {
  const crypto = createCacheCrypto('key material one')
  const owner = {}
  const reply = crypto.seal('ct:v1:t:abc', ENTRY)
  t.same(crypto.open('ct:v1:t:abc', reply, owner), ENTRY)
  reply[reply.length - 1] = reply[reply.length - 1]! ^ 1
  t.equal(crypto.open('ct:v1:t:abc', reply, owner), undefined, 'the tampered bytes are opened (and refused), not matched against themselves')
})

t.test('what an owner remembers ends with the key ring it was worked out under', async t => {
  let ring: readonly string[] = ['old material']
  const crypto = createCacheCrypto(() => ring)
  const owner = {}
  const oldHash = crypto.emailHash('ada@example.com', owner)
  t.equal(oldHash, crypto.emailHash('ada@example.com'), 'the same hash as without an owner')
  t.equal(crypto.emailHash('grace@example.com', owner), crypto.emailHash('grace@example.com'), 'another email under the same owner is hashed afresh')
  t.equal(crypto.emailHash('ada@example.com', owner), oldHash)
  const sealed = crypto.seal('ct:v1:t:abc', ENTRY)
  t.same(crypto.open('ct:v1:t:abc', sealed, owner), ENTRY)

  ring = ['new material', 'old material']
  const newHash = crypto.emailHash('ada@example.com', owner)
  t.not(newHash, oldHash, 'a new newest key names entries anew')
  t.equal(newHash, crypto.emailHash('ada@example.com'))
  t.same(crypto.open('ct:v1:t:abc', sealed, owner), ENTRY, 'an older key of the ring still opens its entries')

  ring = ['new material']
  t.equal(crypto.open('ct:v1:t:abc', sealed, owner), undefined, 'once its key leaves the ring, the entry no longer opens, remembered or not')
})
