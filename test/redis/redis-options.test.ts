import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config/load-config.js'
import { describeRedisTarget, redisHostNames, redisTargetIdentity, sentinelOptions } from '../../src/redis/redis-options.js'
import { parseSentinelUrl } from '../../src/config/sentinel-url.js'
import { maskedConfig } from '../../src/startup.js'

const minimal = { HUBSPOT_ACCESS_TOKEN: 'pat', JWT_SECRET: 'a-session-secret-that-is-long-enough-for-hs256' }

function problems (env: Record<string, string>): string[] {
  try {
    loadConfig({ ...minimal, ...env })
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

t.test('the sentinel URL: hosts with default ports, master, database, credentials for Redis and for the Sentinels', async t => {
  t.same(parseSentinelUrl('redis+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/mymaster/3?sentinelUsername=watch&sentinelPassword=sp'), {
    tls: false,
    sentinels: [{ host: 's1', port: 26380 }, { host: 's2', port: 26379 }, { host: '::1', port: 26381 }],
    master: 'mymaster',
    db: 3,
    username: 'app',
    password: 'p@ss',
    sentinelUsername: 'watch',
    sentinelPassword: 'sp'
  })
  t.match(parseSentinelUrl('rediss+sentinel://only-password@s1/cache'), { tls: true, master: 'cache', db: 0, username: undefined, password: 'only-password' })
  t.match(parseSentinelUrl('redis+sentinel://s1:26379/cache/'), { db: 0 })
})

t.test('a sentinel URL that cannot work says why, without its credentials', async t => {
  const cases: Array<[string, RegExp]> = [
    ['redis+sentinel://secret@s1:26379', /must name the master/],
    ['redis+sentinel://secret@s1:26379/', /must name the master/],
    ['redis+sentinel://secret@s1:26379/my master', /must name the master/],
    ['redis+sentinel://secret@s1:26379/mymaster/x', /database after the master name must be a number/],
    ['redis+sentinel://secret@s1:26379/mymaster/1/2', /database after the master name must be a number/],
    ['redis+sentinel://secret@s1:99999/mymaster', /not host:port: "s1:99999"/],
    ['redis+sentinel://secret@s1:26379,,s2/mymaster', /at least one Sentinel/],
    ['redis+sentinel://secret@/mymaster', /at least one Sentinel/],
    ['redis+sentinel://secret@s1/mymaster?password=x', /only the query parameters sentinelUsername and sentinelPassword, got "password"/],
    ['redis+sentinel://%zz:secret@s1/mymaster', /percent-encoding/]
  ]
  for (const [url, why] of cases) {
    const parsed = parseSentinelUrl(url)
    t.match(parsed, why, url)
    t.notMatch(String(parsed), /secret/, 'the password is never quoted')
    const found = problems({ REDIS_URL: url })
    t.equal(found.length, 1, `${url}: one problem`)
    t.match(found[0], /^REDIS_URL: /)
    t.notMatch(found[0], /secret/)
  }
})

t.test('REDIS_URL takes redis://, rediss:// with an ACL user, and the sentinel forms', async t => {
  t.equal(loadConfig({ ...minimal, REDIS_URL: 'rediss://chat-token:pw@redis.internal:6380' }).redisUrl, 'rediss://chat-token:pw@redis.internal:6380')
  const url = 'redis+sentinel://app:pw@s1:26379,s2:26379/mymaster/2'
  t.equal(loadConfig({ ...minimal, REDIS_URL: url }).redisUrl, url)
  t.equal(loadConfig({ ...minimal, REDIS_URL: 'rediss+sentinel://s1/mymaster' }).redisUrl, 'rediss+sentinel://s1/mymaster')
  t.match(problems({ REDIS_URL: 'http://redis.internal' }), [/REDIS_URL: must start with redis:\/\/ or rediss:\/\//])
})

t.test('REDIS_SENTINELS and REDIS_SENTINEL_MASTER make the sentinel URL; REDIS_URL beside them gives credentials, TLS and database', async t => {
  t.equal(loadConfig({ ...minimal, REDIS_SENTINELS: 's1:26379, s2:26380', REDIS_SENTINEL_MASTER: 'MyMaster' }).redisUrl, 'redis+sentinel://s1:26379,s2:26380/MyMaster')
  t.equal(
    loadConfig({ ...minimal, REDIS_SENTINELS: 's1,s2', REDIS_SENTINEL_MASTER: 'MyMaster', REDIS_URL: 'rediss://app:p%40ss@mymaster/2?sentinelPassword=sp' }).redisUrl,
    'rediss+sentinel://app:p%40ss@s1,s2/MyMaster/2?sentinelPassword=sp'
  )
  t.match(problems({ REDIS_SENTINELS: 's1' }), [/^REDIS_SENTINEL_MASTER: REDIS_SENTINELS .* and REDIS_SENTINEL_MASTER .* go together/])
  t.match(problems({ REDIS_SENTINEL_MASTER: 'mymaster' }), [/^REDIS_SENTINELS: /])
  t.match(problems({ REDIS_SENTINELS: 's1:x', REDIS_SENTINEL_MASTER: 'mymaster' }), [/^REDIS_SENTINELS: has a Sentinel address that is not host:port: "s1:x"/])
  t.match(problems({ REDIS_SENTINELS: 's1', REDIS_SENTINEL_MASTER: 'my master' }), [/^REDIS_SENTINEL_MASTER: must name the master/])
  const elsewhere = problems({ REDIS_SENTINELS: 's1', REDIS_SENTINEL_MASTER: 'mymaster', REDIS_URL: 'redis://app:secret@redis.internal:6379' })
  t.match(elsewhere, [/^REDIS_URL: with REDIS_SENTINELS, its host must be the master's name "mymaster"/])
  t.notMatch(elsewhere.join(), /secret/)
  t.match(problems({ REDIS_SENTINELS: 's1', REDIS_SENTINEL_MASTER: 'mymaster', REDIS_URL: 'redis+sentinel://s1/mymaster' }), [/^REDIS_SENTINELS: set either a sentinel REDIS_URL or REDIS_SENTINELS/])
})

t.test('ioredis options for a sentinel URL: Sentinel credentials apart, failover noticed at once, READONLY reconnects', async t => {
  const options = sentinelOptions('rediss+sentinel://app:pw@s1,s2:26380/mymaster/4?sentinelPassword=sp')
  t.match(options, {
    sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }],
    name: 'mymaster',
    role: 'master',
    db: 4,
    username: 'app',
    password: 'pw',
    sentinelPassword: 'sp',
    failoverDetector: true,
    enableTLSForSentinelMode: true,
    tls: {},
    sentinelTLS: {}
  })
  const reconnect = options.reconnectOnError!
  t.equal(reconnect(new Error('READONLY You can\'t write against a read only replica.')), 1)
  t.equal(reconnect(new Error('OOM command not allowed')), false)
  t.notOk('tls' in sentinelOptions('redis+sentinel://s1/mymaster'))
})

t.test('descriptions and identities never carry credentials', async t => {
  const url = 'redis+sentinel://app:pw-hidden@s1,[::1]:26380/mymaster/2?sentinelPassword=other-hidden'
  t.equal(describeRedisTarget(url), 'master "mymaster" (db 2) through Sentinels s1:26379, [::1]:26380')
  t.equal(describeRedisTarget('rediss://app:pw-hidden@redis.internal:6380/1'), 'rediss://redis.internal:6380/1')
  t.same(redisHostNames(url), ['s1', '::1'])
  t.same(redisHostNames('redis://redis.internal:6379'), ['redis.internal'])
  t.equal(redisTargetIdentity(url), 'sentinel:mymaster/2')
  t.equal(redisTargetIdentity('redis://:secret@redis.internal:6379/3'), 'redis.internal:6379/3')
  const masked = JSON.stringify(maskedConfig(loadConfig({ ...minimal, REDIS_URL: url })))
  t.notMatch(masked, /hidden/, 'the start-up line masks the password and drops the query')
  t.match(masked, /redis\+sentinel:\/\/app:\[masked\]@s1,\[::1\]:26380\/mymaster\/2/)
})
