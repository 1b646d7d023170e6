import { generateKeyPairSync } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load-config.js'
import type { Env } from '../src/config/types.js'
import { PUBLISHED_DEMO_SECRETS } from '../src/config/jwt-settings.js'
import { TS_LOADER } from './process-helper.js'

const SECRET = 'a-config-test-secret-of-at-least-32-bytes'
const minimal: Env = { HUBSPOT_ACCESS_TOKEN: 'pat-test', JWT_SECRET: SECRET }

function problemsOf (env: Env, readFile?: (path: string) => string): string[] {
  try {
    loadConfig(env, readFile === undefined ? {} : { readFile })
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

t.test('defaults follow the contract', async t => {
  const config = loadConfig(minimal)
  t.equal(config.port, 3000)
  t.equal(config.host, '0.0.0.0')
  t.equal(config.metricsPort, 9464)
  t.equal(config.logLevel, 'info')
  t.equal(config.trustProxy, false)
  t.equal(config.hubspot.baseUrl, 'https://api.hubapi.com')
  t.equal(config.hubspot.apiVersion, 'v3')
  t.equal(config.hubspot.timeoutMs, 5000)
  t.equal(config.hubspot.maxRetries, 2)
  t.same(config.hubspot.rateLimit, { max: 100, windowMs: 10_000 })
  t.same(config.jwt.algorithms, ['HS256', 'HS384', 'HS512'])
  t.equal(config.jwt.clockToleranceS, 5)
  t.equal(config.jwt.cookieName, undefined)
  t.same(config.identity, { emailClaim: 'email', firstNameClaim: 'given_name', lastNameClaim: 'family_name', requireEmailVerified: false })
  t.equal(config.tokenCache.ttlS, 21_600)
  t.equal(config.tokenCache.maxEntries, 100_000)
  t.same(config.callerRateLimit, { max: 30, windowS: 60 })
  t.equal(config.shutdownDrainMs, 5000)
})

t.test('every problem is reported at once, each naming its variable', async t => {
  const problems = problemsOf({
    PORT: 'eighty',
    LOG_LEVEL: 'loud',
    HUBSPOT_API_VERSION: 'v4',
    HUBSPOT_TIMEOUT_MS: '10',
    HUBSPOT_RATE_LIMIT: 'lots',
    TOKEN_CACHE_TTL_S: '50000',
    CORS_ORIGINS: 'https://ok.example.com,https://bad.example.com/path,*',
    REDIS_URL: 'http://redis:6379',
    TRUST_PROXY: '10.0.0.0/33'
  })
  const names = problems.map(problem => problem.split(':')[0])
  t.same(names.sort(), ['CORS_ORIGINS', 'HUBSPOT_ACCESS_TOKEN', 'HUBSPOT_API_VERSION', 'HUBSPOT_RATE_LIMIT', 'HUBSPOT_TIMEOUT_MS', 'JWT_SECRET', 'LOG_LEVEL', 'PORT', 'REDIS_URL', 'TOKEN_CACHE_TTL_S', 'TRUST_PROXY'].sort())
  const error = (() => { try { loadConfig({ PORT: 'x' }) } catch (e) { return e as Error } })()
  t.match(error?.message, /Invalid configuration \(3 problems\):\n {2}- PORT/)
})

t.test('secrets never appear in a configuration message', async t => {
  const problems = problemsOf({ HUBSPOT_ACCESS_TOKEN: 'pat-secret-value', JWT_SECRET: 'jwt-secret-value', JWT_JWKS_URL: 'https://x', REDIS_URL: 'ftp://:redis-password@host' })
  t.notMatch(problems.join('\n'), /pat-secret-value|jwt-secret-value|redis-password/)
})

t.test('a URL that does not parse says what is wrong with it, never echoing credentials', async t => {
  t.same(problemsOf({ ...minimal, REDIS_URL: 'redis://127.0.0.1:63a79' }), ['REDIS_URL: is not a valid URL: its port "63a79" is not a number from 0 to 65535'])
  t.same(problemsOf({ ...minimal, REDIS_URL: 'redis://127.0.0.1:70000' }), ['REDIS_URL: is not a valid URL: its port "70000" is not a number from 0 to 65535'])
  t.same(problemsOf({ ...minimal, REDIS_URL: '127.0.0.1:6379' }), ['REDIS_URL: is not a URL (expected redis://host:port or rediss://host:port)'])
  t.same(problemsOf({ ...minimal, REDIS_URL: 'http://127.0.0.1:6379' }), ['REDIS_URL: must start with redis:// or rediss://, got "http:"'])
  t.match(problemsOf({ ...minimal, REDIS_URL: 'redis://[::1' }), [/^REDIS_URL: is not a valid URL: its host "\[::1" does not parse/])
  t.match(problemsOf({ ...minimal, HUBSPOT_BASE_URL: 'https://api.hubapi.com:44x' }), [/^HUBSPOT_BASE_URL: is not a valid URL: its port "44x"/])
  // With credentials in the value, the message names the part but quotes nothing.
  for (const url of ['redis://:redis-password@127.0.0.1:63a79', 'redis://:redis/password@host:6379', 'redis://user:redis-password@[::1']) {
    const problems = problemsOf({ ...minimal, REDIS_URL: url })
    t.match(problems, [/^REDIS_URL: is not a valid URL: its (port|host) (is not|does not)/], url)
    t.notMatch(problems.join('\n'), /redis-password|password/, url)
  }
})

t.test('exactly one JWT key source', async t => {
  t.match(problemsOf({ HUBSPOT_ACCESS_TOKEN: 'x' }).join(), /exactly one of JWT_SECRET.*\(0 are\)/)
  t.match(problemsOf({ ...minimal, JWT_JWKS_URL: 'https://idp.example.com/jwks' }).join(), /\(2 are\)/)
  const jwks = loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_JWKS_URL: 'https://idp.example.com/jwks' })
  t.same(jwks.jwt.key, { kind: 'jwks', url: 'https://idp.example.com/jwks', cooldownS: 30 })
  t.notOk(jwks.jwt.algorithms.some(alg => alg.startsWith('HS')), 'JWKS never allows HMAC')
})

t.test('algorithms are pinned per key type', async t => {
  const cases: Array<[string, Parameters<typeof generateKeyPairSync>[1] | undefined, string[]]> = [
    ['rsa', { modulusLength: 2048 }, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']],
    ['ec', { namedCurve: 'P-256' }, ['ES256']],
    ['ec', { namedCurve: 'P-384' }, ['ES384']],
    ['ed25519', undefined, ['EdDSA']]
  ]
  for (const [type, options, expected] of cases) {
    const { publicKey } = generateKeyPairSync(type as 'rsa', options as { modulusLength: number })
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
    t.same(loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: pem }).jwt.algorithms, expected, `${type} ${JSON.stringify(options ?? {})}`)
  }
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.same(loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: pem, JWT_ALGORITHMS: 'RS256' }).jwt.algorithms, ['RS256'])
  t.match(problemsOf({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: pem, JWT_ALGORITHMS: 'HS256' }).join(), /JWT_ALGORITHMS: allowed for this key: RS256.*not allowed: HS256/)
  t.match(problemsOf({ ...minimal, JWT_ALGORITHMS: 'none' }).join(), /"none" is never allowed/)
  t.match(problemsOf({ ...minimal, JWT_ALGORITHMS: 'NoNe,HS256' }).join(), /"none" is never allowed/)
})

t.test('PEM keys: escaped newlines accepted, private keys and junk refused', async t => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.equal(loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: pem.replace(/\n/g, '\\n') }).jwt.key.kind, 'public-key')
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  t.match(problemsOf({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: privatePem }).join(), /JWT_PUBLIC_KEY: holds a private key/)
  t.match(problemsOf({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY: 'not a key' }).join(), /JWT_PUBLIC_KEY: is not a PEM public key/)
})

t.test('_FILE variables read secrets from files and win over the plain variable', async t => {
  const files: Record<string, string> = { '/run/secrets/hubspot': 'pat-from-file\n', '/run/secrets/empty': '  \n' }
  const readFile = (path: string): string => {
    const content = files[path]
    if (content === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' })
    return content
  }
  const config = loadConfig({ JWT_SECRET: SECRET, HUBSPOT_ACCESS_TOKEN: 'pat-plain', HUBSPOT_ACCESS_TOKEN_FILE: '/run/secrets/hubspot' }, { readFile })
  t.equal(config.hubspot.accessToken, 'pat-from-file')
  t.match(problemsOf({ JWT_SECRET: SECRET, HUBSPOT_ACCESS_TOKEN_FILE: '/run/secrets/missing' }, readFile).join(), /HUBSPOT_ACCESS_TOKEN_FILE: cannot read "\/run\/secrets\/missing" \(ENOENT\)/)
  t.match(problemsOf({ JWT_SECRET: SECRET, HUBSPOT_ACCESS_TOKEN_FILE: '/run/secrets/empty' }, readFile).join(), /is empty/)
  const { publicKey } = generateKeyPairSync('ed25519')
  files['/run/secrets/jwt.pem'] = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.same(loadConfig({ HUBSPOT_ACCESS_TOKEN: 'x', JWT_PUBLIC_KEY_FILE: '/run/secrets/jwt.pem' }, { readFile }).jwt.algorithms, ['EdDSA'])
})

t.test('parsed forms of structured variables', async t => {
  const parse = (env: Env) => loadConfig({ ...minimal, ...env })
  t.same(parse({ HUBSPOT_RATE_LIMIT: '190/10s' }).hubspot.rateLimit, { max: 190, windowMs: 10_000 })
  t.same(parse({ HUBSPOT_RATE_LIMIT: '50 / 500ms' }).hubspot.rateLimit, { max: 50, windowMs: 500 })
  t.same(parse({ HUBSPOT_RATE_LIMIT: '5/s' }).hubspot.rateLimit, { max: 5, windowMs: 1000 })
  t.equal(parse({ HUBSPOT_API_VERSION: '2026-09' }).hubspot.apiVersion, '2026-09')
  t.equal(parse({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(parse({ TRUST_PROXY: '2' }).trustProxy, 2)
  t.same(parse({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1, ::1' }).trustProxy, ['10.0.0.0/8', '127.0.0.1', '::1'])
  t.same(parse({ JWT_ISSUER: 'https://a, https://b', JWT_AUDIENCE: 'app' }).jwt.issuers, ['https://a', 'https://b'])
  t.same(parse({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).corsOrigins, ['https://app.example.com', 'http://localhost:5173'])
  t.equal(parse({ REQUIRE_EMAIL_VERIFIED: 'TRUE' }).identity.requireEmailVerified, true)
  t.same(parse({ USER_LOOKUP_URL: 'https://users.internal/v1/users/{sub}', USER_LOOKUP_AUTH: 'Bearer x' }).userLookup,
    { urlTemplate: 'https://users.internal/v1/users/{sub}', authorization: 'Bearer x', timeoutMs: 3000 })
  t.match(problemsOf({ ...minimal, USER_LOOKUP_URL: 'https://users.internal/v1/users' }).join(), /USER_LOOKUP_URL: must be an http\(s\) URL template containing \{sub\}/)
  t.match(problemsOf({ ...minimal, JWT_COOKIE: 'bad cookie' }).join(), /JWT_COOKIE/)
  t.match(problemsOf({ ...minimal, REQUIRE_EMAIL_VERIFIED: 'yes' }).join(), /REQUIRE_EMAIL_VERIFIED: must be "true" or "false"/)
})

t.test('the process stops with exit code 1 and one message listing every problem', async t => {
  const result = spawnSync(process.execPath, ['--import', TS_LOADER, 'src/server.ts'], {
    env: { PATH: process.env.PATH, PORT: 'x', HUBSPOT_TIMEOUT_MS: '1' },
    encoding: 'utf8',
    timeout: 20_000
  })
  t.equal(result.status, 1)
  t.match(result.stderr, /Invalid configuration \(4 problems\)/)
  t.match(result.stderr, /PORT:.*\n.*HUBSPOT_ACCESS_TOKEN:.*\n.*HUBSPOT_TIMEOUT_MS:.*\n.*JWT_SECRET:/)
  t.notMatch(result.stderr, /\bat .*\.ts:\d+/, 'no stack trace')
})

t.test('listener limits and load shedding: defaults, bounds and cross-checks', async t => {
  const config = loadConfig(minimal)
  t.same(config.http, { keepAliveTimeoutMs: 72_000, headersTimeoutMs: 10_000, requestTimeoutMs: 15_000 })
  t.same(config.loadShedding, { maxEventLoopDelayMs: 1000, maxHeapUsedBytes: undefined }, 'heap threshold follows V8 when unset')
  t.same(loadConfig({ ...minimal, MAX_HEAP_USED_BYTES: '0', MAX_EVENT_LOOP_DELAY_MS: '0' }).loadShedding, { maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0 })
  t.equal(loadConfig({ ...minimal, MAX_HEAP_USED_BYTES: '1073741824' }).loadShedding.maxHeapUsedBytes, 1_073_741_824)
  t.match(problemsOf({ ...minimal, KEEP_ALIVE_TIMEOUT_MS: '500' }).join(), /KEEP_ALIVE_TIMEOUT_MS: must be a whole number from 1000/)
  t.match(problemsOf({ ...minimal, HEADERS_TIMEOUT_MS: '20000' }).join(), /HEADERS_TIMEOUT_MS: must not exceed REQUEST_TIMEOUT_MS/)
  t.match(problemsOf({ ...minimal, MAX_HEAP_USED_BYTES: 'lots' }).join(), /MAX_HEAP_USED_BYTES/)
  t.match(problemsOf({ ...minimal, PORT: '9000', METRICS_PORT: '9000' }).join(), /METRICS_PORT: must differ from PORT/)
  t.same(problemsOf({ ...minimal, PORT: '0', METRICS_PORT: '0' }), [], 'two zeros: an ephemeral port and no metrics')
})

t.test('an HMAC JWT_SECRET shorter than 32 bytes is refused (RFC 7518 §3.2), counted in bytes', async t => {
  t.match(problemsOf({ ...minimal, JWT_SECRET: 'x'.repeat(31) }).join(), /JWT_SECRET: must be at least 32 bytes \(RFC 7518 §3\.2\), got 31/)
  t.same(problemsOf({ ...minimal, JWT_SECRET: 'x'.repeat(32) }), [])
  // 16 characters of two bytes each: 32 bytes, accepted; 15 of them are 30 bytes, refused.
  t.same(problemsOf({ ...minimal, JWT_SECRET: 'é'.repeat(16) }), [])
  t.match(problemsOf({ ...minimal, JWT_SECRET: 'é'.repeat(15) }).join(), /got 30/)
  t.notMatch(problemsOf({ ...minimal, JWT_SECRET: 'short-secret-value' }).join(), /short-secret-value/, 'the secret is not echoed')
})

t.test('the demo secret published in this repository is refused unless CHAT_TOKEN_DEMO=true', async t => {
  for (const secret of PUBLISHED_DEMO_SECRETS) {
    t.match(problemsOf({ ...minimal, JWT_SECRET: secret }).join(), /JWT_SECRET: is the demo secret published in this repository/)
    t.match(problemsOf({ ...minimal, JWT_SECRET: secret, CHAT_TOKEN_DEMO: 'false' }).join(), /published/)
    t.same(problemsOf({ ...minimal, JWT_SECRET: secret, CHAT_TOKEN_DEMO: 'true' }), [])
    t.notMatch(problemsOf({ ...minimal, JWT_SECRET: secret }).join(), new RegExp(secret), 'the secret is not echoed')
  }
  t.ok(PUBLISHED_DEMO_SECRETS.has('demo-only-session-secret-never-use-in-production'))
  t.equal(loadConfig({ ...minimal }).demo, false)
})

t.test('http upstreams are refused unless loopback or ALLOW_HTTP_UPSTREAMS=true', async t => {
  const refused: Env[] = [
    { HUBSPOT_BASE_URL: 'http://api.hubapi.com' },
    { HUBSPOT_BASE_URL: 'http://10.0.0.5:8090' },
    { HUBSPOT_BASE_URL: 'http://localhost.evil.example' },
    { HUBSPOT_BASE_URL: 'http://127.0.0.1.nip.io' },
    { HUBSPOT_BASE_URL: 'http://[::ffff:7f00:1]' },
    { HUBSPOT_BASE_URL: 'http://emulator:8090' },
    { USER_LOOKUP_URL: 'http://users.internal/v1/users/{sub}' }
  ]
  for (const env of refused) {
    const [name = ''] = Object.keys(env)
    t.match(problemsOf({ ...minimal, ...env }).join(), new RegExp(`${name}: must use https`), `${JSON.stringify(env)} is refused`)
    t.same(problemsOf({ ...minimal, ...env, ALLOW_HTTP_UPSTREAMS: 'true' }), [], `${JSON.stringify(env)} with ALLOW_HTTP_UPSTREAMS=true`)
  }
  const { JWT_SECRET: _secret, ...withoutSecret } = minimal
  t.match(problemsOf({ ...withoutSecret, JWT_JWKS_URL: 'http://idp.example/jwks.json' }).join(), /JWT_JWKS_URL: must use https/)
  const accepted = ['http://127.0.0.1:8090', 'http://127.9.8.7', 'http://localhost:8090', 'http://LOCALHOST:1', 'http://[::1]:8090', 'https://api.hubapi.com']
  for (const url of accepted) t.same(problemsOf({ ...minimal, HUBSPOT_BASE_URL: url }), [], `${url} is accepted`)
  t.same(problemsOf({ ...withoutSecret, JWT_JWKS_URL: 'http://127.0.0.1:9/jwks.json' }), [])
})

t.test('the user directory template keeps {sub} out of the host, the user name and the fragment', async t => {
  for (const template of ['https://{sub}.users.example/v1', 'https://{sub}@users.example/v1', 'https://users.example/v1#{sub}']) {
    t.match(problemsOf({ ...minimal, USER_LOOKUP_URL: template }).join(), /USER_LOOKUP_URL: must have \{sub\} in the path or the query/, template)
  }
  t.same(problemsOf({ ...minimal, USER_LOOKUP_URL: 'https://users.example/v1/users?id={sub}' }), [])
})

t.test('a JWKS or PEM key without JWT_AUDIENCE is flagged once; a shared secret is not', async t => {
  const { JWT_SECRET: _secret, ...withoutSecret } = minimal
  const jwks = loadConfig({ ...withoutSecret, JWT_JWKS_URL: 'https://idp.example/jwks.json' })
  t.equal(jwks.warnings.length, 1)
  t.equal(jwks.warnings[0]?.setting, 'JWT_AUDIENCE')
  t.match(jwks.warnings[0]?.message, /issued to any other application are accepted/)
  t.same(loadConfig({ ...withoutSecret, JWT_JWKS_URL: 'https://idp.example/jwks.json', JWT_AUDIENCE: 'app' }).warnings, [])
  const { publicKey } = generateKeyPairSync('ed25519')
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.equal(loadConfig({ ...withoutSecret, JWT_PUBLIC_KEY: pem }).warnings.length, 1)
  t.same(loadConfig(minimal).warnings, [])
})

t.test('HubSpot\'s account time zone, the daily ceiling and the per-person mint limit', async t => {
  const defaults = loadConfig(minimal)
  t.equal(defaults.hubspot.accountTimeZone, 'UTC')
  t.equal(defaults.hubspot.dailyLimit, undefined, 'no ceiling of our own unless set')
  t.same(defaults.tokenCache.mintLimit, { max: 10, windowMs: 3_600_000 }, 'ten new tokens a person an hour')
  const set = loadConfig({ ...minimal, HUBSPOT_ACCOUNT_TIME_ZONE: 'Asia/Kolkata', HUBSPOT_DAILY_LIMIT: '250000', TOKEN_MINT_LIMIT: '20/30m' })
  t.equal(set.hubspot.accountTimeZone, 'Asia/Kolkata', 'kept as written (the runtime may know it by an older alias)')
  t.equal(set.hubspot.dailyLimit, 250_000)
  t.same(set.tokenCache.mintLimit, { max: 20, windowMs: 1_800_000 })
  const problems = problemsOf({ ...minimal, HUBSPOT_ACCOUNT_TIME_ZONE: 'Europe/Atlantis', HUBSPOT_DAILY_LIMIT: 'lots', TOKEN_MINT_LIMIT: '5 per hour' })
  t.equal(problems.length, 3, 'one problem each')
  t.match(problems.find(problem => problem.startsWith('HUBSPOT_ACCOUNT_TIME_ZONE:')), /IANA time zone.*"Europe\/Atlantis"/)
  t.match(problems.find(problem => problem.startsWith('HUBSPOT_DAILY_LIMIT:')), /whole number from 1/)
  t.match(problems.find(problem => problem.startsWith('TOKEN_MINT_LIMIT:')), /must look like/)
  t.equal(problemsOf({ ...minimal, HUBSPOT_DAILY_LIMIT: '0' }).length, 1, 'a ceiling of 0 is refused: leave it unset for none')
})

t.test('every variable the configuration reads is documented in the configuration reference and in .env.example', async t => {
  const configDir = new URL('../src/config/', import.meta.url)
  const source = readdirSync(configDir).filter(name => name.endsWith('.ts')).map(name => readFileSync(new URL(name, configDir), 'utf8')).join('\n')
  const readme = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8')
  const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')
  // read.integer('NAME', …) and the helpers that take the reader first: readBudget(read, 'NAME', …).
  const names = new Set([...source.matchAll(/read(?:\.\w+\(|, )'([A-Z][A-Z0-9_]+)'/g)].map(match => match[1] ?? ''))
  t.ok(names.has('ALLOW_HTTP_UPSTREAMS') && names.has('CHAT_TOKEN_DEMO') && names.size > 30, `found ${names.size} variables`)
  for (const name of names) {
    t.ok(readme.includes(`\`${name}\``), `${name} is in docs/configuration.md`)
    t.match(example, new RegExp(`^#? ?${name}=`, 'm'), `${name} is in .env.example`)
  }
})
