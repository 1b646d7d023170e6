import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import t from 'tap'
import { CACHE_CONTROL } from '../../src/routes/chat-identity-script.js'
import { browserHelperBundle } from '../browser-helper-bundle.js'
import { baseEnv, build, captureLogs } from '../helper.js'

const MAX_GZIPPED_BYTES = 3072

t.test('each bundle stays within 3 KB gzipped', async t => {
  const { files } = await browserHelperBundle()
  for (const [name, text] of Object.entries(files)) {
    const size = gzipSync(text, { level: 9 }).length
    t.ok(size <= MAX_GZIPPED_BYTES, `${name}: ${size} bytes gzipped`)
  }
})

t.test('the classic script defines the ChatIdentity global; the module exports start and logout', async t => {
  const { files } = await browserHelperBundle()
  t.match(files['chat-identity.js'], /^"use strict";var ChatIdentity=/)
  t.match(files['chat-identity.mjs'], /export\{[^}]*as logout[^}]*as start\}|export\{[^}]*as start[^}]*as logout\}/)
})

t.test('GET /chat-identity.js: JavaScript, strong ETag, a day of caching, usable cross-origin', async t => {
  const { dir, files } = await browserHelperBundle()
  const service = await build(t, baseEnv(undefined), { browserHelperDir: dir })
  const answer = await service.get('/chat-identity.js')
  t.equal(answer.status, 200)
  t.equal(answer.text, files['chat-identity.js'])
  t.equal(answer.headers['content-type'], 'text/javascript; charset=utf-8')
  t.equal(answer.headers['cache-control'], CACHE_CONTROL.unversioned)
  t.equal(answer.headers.vary, 'accept-encoding')
  t.equal(answer.headers['cross-origin-resource-policy'], 'cross-origin', 'overrides helmet\'s same-origin')
  t.equal(answer.headers['content-encoding'], undefined)
  t.match(answer.headers.etag, /^"[A-Za-z0-9_-]{16}"$/)

  const module = await service.get('/chat-identity.mjs')
  t.equal(module.text, files['chat-identity.mjs'])
  t.not(module.headers.etag, answer.headers.etag)
})

t.test('304 for a matching If-None-Match (strong, weak, listed or *), 200 otherwise', async t => {
  const { dir } = await browserHelperBundle()
  const service = await build(t, baseEnv(undefined), { browserHelperDir: dir })
  const etag = String((await service.get('/chat-identity.js')).headers.etag)
  for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const answer = await service.get('/chat-identity.js', { 'if-none-match': header })
    t.equal(answer.status, 304, header)
    t.equal(answer.text, '')
    t.equal(answer.headers.etag, etag)
    t.equal(answer.headers['cache-control'], CACHE_CONTROL.unversioned)
  }
  t.equal((await service.get('/chat-identity.js', { 'if-none-match': '"stale"' })).status, 200)
})

t.test('gzip when accepted, precompressed, with its own ETag that also revalidates', async t => {
  const { dir, files } = await browserHelperBundle()
  const service = await build(t, baseEnv(undefined), { browserHelperDir: dir })
  const response = await service.app.inject({ url: '/chat-identity.js', headers: { 'accept-encoding': 'br;q=1, gzip;q=0.8' } })
  const body = response.rawPayload
  t.equal(response.statusCode, 200)
  t.equal(response.headers['content-encoding'], 'gzip')
  t.equal(gunzipSync(body).toString(), files['chat-identity.js'])
  t.ok(body.length <= MAX_GZIPPED_BYTES)
  const etag = String(response.headers.etag)
  t.match(etag, /-gz"$/)
  const again = await service.get('/chat-identity.js', { 'accept-encoding': 'gzip', 'if-none-match': etag })
  t.equal(again.status, 304)

  for (const refused of ['gzip;q=0', 'identity', 'br']) {
    const plain = await service.get('/chat-identity.js', { 'accept-encoding': refused })
    t.equal(plain.headers['content-encoding'], undefined, refused)
    t.equal(plain.text, files['chat-identity.js'])
  }
})

t.test('?v=<version> is cached for good; another version must revalidate', async t => {
  const { dir } = await browserHelperBundle()
  const service = await build(t, baseEnv(undefined), { browserHelperDir: dir })
  const version = String((await service.get('/chat-identity.js')).headers.etag).slice(1, -1)
  t.equal((await service.get(`/chat-identity.js?v=${version}`)).headers['cache-control'], CACHE_CONTROL.versioned)
  t.equal((await service.get('/chat-identity.js?v=0ld')).headers['cache-control'], CACHE_CONTROL.otherVersion)
})

t.test('?v=<version>-gz, the gzipped ETag as devtools show it, is the same build: cached for good', async t => {
  const { dir } = await browserHelperBundle()
  const service = await build(t, baseEnv(undefined), { browserHelperDir: dir })
  const gzipped = String((await service.get('/chat-identity.js', { 'accept-encoding': 'gzip' })).headers.etag).slice(1, -1)
  t.match(gzipped, /-gz$/)
  for (const encoding of ['gzip', 'identity']) {
    const answer = await service.get(`/chat-identity.js?v=${gzipped}`, { 'accept-encoding': encoding })
    t.equal(answer.headers['cache-control'], CACHE_CONTROL.versioned, encoding)
  }
  t.equal((await service.get('/chat-identity.js?v=0ld-gz')).headers['cache-control'], CACHE_CONTROL.otherVersion)
  t.equal((await service.get(`/chat-identity.js?v=${gzipped}-gz`)).headers['cache-control'], CACHE_CONTROL.otherVersion)
})

t.test('a CORS answer keeps Vary: Origin and adds Accept-Encoding; the caller may read Date', async t => {
  const { dir } = await browserHelperBundle()
  const site = 'https://www.example.com'
  const service = await build(t, baseEnv(undefined, { CORS_ORIGINS: site }), { browserHelperDir: dir })
  const requests: Array<Record<string, string>> = [{ origin: site }, { origin: site, 'accept-encoding': 'gzip' }, { origin: site, 'if-none-match': '*' }]
  for (const headers of requests) {
    const answer = await service.get('/chat-identity.js', headers)
    t.equal(answer.headers['access-control-allow-origin'], site)
    const vary = String(answer.headers.vary).split(',').map(field => field.trim().toLowerCase())
    t.same(vary.sort(), ['accept-encoding', 'origin'], `${JSON.stringify(headers)}: ${String(answer.headers.vary)}`)
  }
  // The helper measures the token's life on the service's clock, which it reads from Date.
  const token = await service.get('/chat-token', { origin: site })
  t.ok(String(token.headers['access-control-expose-headers']).split(/,\s*/).includes('date'))
})

t.test('HEAD answers the headers without a body', async t => {
  const { dir } = await browserHelperBundle()
  const service = await build(t, baseEnv(undefined), { browserHelperDir: dir })
  const head = await service.app.inject({ method: 'HEAD', url: '/chat-identity.js' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal(head.headers['content-type'], 'text/javascript; charset=utf-8')
})

t.test('a missing build: one warning at start-up, then 404 problems, and the rest of the service works', async t => {
  const empty = await mkdtemp(join(tmpdir(), 'chat-identity-missing-'))
  t.teardown(() => rm(empty, { recursive: true, force: true }))
  const logs = captureLogs()
  const service = await build(t, baseEnv(undefined, { LOG_LEVEL: 'info' }), { browserHelperDir: empty, logStream: logs.stream })
  for (const path of ['/chat-identity.js', '/chat-identity.mjs', '/chat-identity.js']) {
    const answer = await service.get(path)
    t.equal(answer.status, 404)
    t.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.equal(answer.json().code, 'not_found')
  }
  t.equal((await service.get('/healthz')).status, 200)
  const warnings = logs.lines().filter(line => line.msg === 'browser helper not built (npm run build): its routes answer 404')
  t.equal(warnings.length, 1)
  t.same(warnings[0]?.missing, ['chat-identity.js', 'chat-identity.mjs'])
})
