import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { loadConfig } from '../src/config/load-config.js'
import { MASK, maskedConfig, serviceVersion, startupSummary } from '../src/startup.js'

const secrets = {
  HUBSPOT_ACCESS_TOKEN: 'pat-na1-very-secret-access-token',
  JWT_SECRET: 'jwt-secret-that-must-not-leak-anywhere',
  USER_LOOKUP_AUTH: 'Bearer directory-secret',
  REDIS_URL: 'redis://cache-user:redis-password-123@redis.internal:6379/0'
}

t.test('the summary names the version, the Node version and the listeners', async t => {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(serviceVersion(), manifest.version)
  const summary = startupSummary(loadConfig({ ...secrets }), { url: 'http://127.0.0.1:3000', metricsUrl: undefined })
  t.match(summary, { version: manifest.version, node: process.version, url: 'http://127.0.0.1:3000', metricsUrl: undefined })
})

t.test('secrets are masked wherever they sit, and settings stay readable', async t => {
  const config = loadConfig({ ...secrets, USER_LOOKUP_URL: 'https://users.internal/v1/users/{sub}', CORS_ORIGINS: 'https://app.example.com' })
  const masked = maskedConfig(config)
  const text = JSON.stringify(masked)
  for (const [name, value] of Object.entries(secrets)) {
    const secretPart = name === 'REDIS_URL' ? 'redis-password-123' : value
    t.notOk(text.includes(secretPart), `${name} is not in the line`)
  }
  t.match(masked, {
    hubspot: { accessToken: MASK, baseUrl: 'https://api.hubapi.com', timeoutMs: 5000 },
    jwt: { key: { kind: 'secret', secret: MASK }, algorithms: ['HS256', 'HS384', 'HS512'] },
    userLookup: { urlTemplate: 'https://users.internal/v1/users/{sub}', authorization: MASK },
    redisUrl: `redis://cache-user:${MASK}@redis.internal:6379/0`,
    corsOrigins: ['https://app.example.com'],
    shutdownDrainMs: 5000
  })
})

t.test('a PEM key and URL credentials without a password are masked too', async t => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const config = loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: pem, REDIS_URL: 'rediss://only-a-token@redis.internal:6380' })
  const masked = maskedConfig(config)
  t.match(masked, { jwt: { key: { kind: 'public-key', pem: MASK } }, redisUrl: `rediss://${MASK}@redis.internal:6380` })
  t.notOk(JSON.stringify(masked).includes('BEGIN PUBLIC KEY'))
})

t.test('URLs are logged with scheme, host and path only: query strings and fragments may hold credentials', async t => {
  const config = loadConfig({
    ...secrets,
    REDIS_URL: 'redis://redis.internal:6379/0?password=redis-query-secret&db=1',
    USER_LOOKUP_URL: 'https://users.internal/v1/users/{sub}?api_key=directory-query-secret#frag-secret',
    JWT_SECRET: undefined,
    JWT_JWKS_URL: 'https://idp.example/jwks.json?token=jwks-query-secret'
  })
  const text = JSON.stringify(maskedConfig(config))
  for (const secret of ['redis-query-secret', 'directory-query-secret', 'frag-secret', 'jwks-query-secret']) {
    t.notOk(text.includes(secret), `${secret} is not in the line`)
  }
  t.match(maskedConfig(config), {
    redisUrl: 'redis://redis.internal:6379/0',
    userLookup: { urlTemplate: 'https://users.internal/v1/users/{sub}' },
    jwt: { key: { kind: 'jwks', url: 'https://idp.example/jwks.json' } }
  })
})

t.test('the cache key and secret file paths: the key is masked, the paths are shown', async t => {
  const config = loadConfig({ ...secrets, CACHE_KEY: 'cache-key-that-must-not-leak-0123456789', HUBSPOT_ACCESS_TOKEN_FILE: undefined })
  const masked = maskedConfig(config)
  t.notOk(JSON.stringify(masked).includes('cache-key-that-must-not-leak'))
  t.match(masked, { cacheKey: MASK, secretFiles: { hubspotAccessToken: undefined } })
})
