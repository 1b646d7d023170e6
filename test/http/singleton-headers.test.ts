import t from 'tap'
import { duplicatedSingleton, SINGLETON_HEADERS } from '../../src/http/singleton-headers.js'
import { baseEnv, rawExchange, signSession, startEmulator, startService } from '../helper.js'

/** Ambiguous requests (a singleton header twice) are refused with 400 before any work. */

function statusOf (rawAnswer: string): number {
  return Number(rawAnswer.slice(9, 12))
}

function bodyOf (rawAnswer: string): Record<string, unknown> {
  return JSON.parse(rawAnswer.slice(rawAnswer.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>
}

t.test('a singleton header given twice is 400 bad_request as problem+json, and nothing reaches HubSpot', async t => {
  const emulator = await startEmulator(t)
  const service = await startService(t, baseEnv(emulator, { JWT_COOKIE: 'sid' }))
  const jwt = signSession({ sub: 'ada', email: 'ada@example.com' })
  const other = signSession({ sub: 'eve', email: 'eve@example.com' })
  const cases: Array<[string, string]> = [
    ['Host twice', `Host: a.example\r\nHost: b.example\r\nAuthorization: Bearer ${jwt}\r\n`],
    ['Host twice in other cases', `host: a.example\r\nHOST: a.example\r\nAuthorization: Bearer ${jwt}\r\n`],
    ['Authorization twice', `Host: a.example\r\nAuthorization: Bearer ${jwt}\r\nAuthorization: Bearer ${other}\r\n`],
    ['Authorization twice, same value', `Host: a.example\r\nAuthorization: Bearer ${jwt}\r\nauthorization: Bearer ${jwt}\r\n`],
    ['Origin twice', `Host: a.example\r\nOrigin: https://a.example\r\nOrigin: https://evil.example\r\nCookie: sid=${jwt}\r\n`],
    ['Sec-Fetch-Site twice', `Host: a.example\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Site: cross-site\r\nCookie: sid=${jwt}\r\n`]
  ]
  for (const [name, headers] of cases) {
    const answer = await rawExchange(service.url, `GET /chat-token HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`)
    t.equal(statusOf(answer), 400, `${name}: 400`)
    t.match(answer, /content-type: application\/problem\+json/i, `${name}: problem+json`)
    t.equal(bodyOf(answer).code, 'bad_request', `${name}: bad_request`)
  }
  t.equal(emulator.calls().length, 0, 'no HubSpot call for an ambiguous request')

  const single = await rawExchange(service.url, `GET /chat-token HTTP/1.1\r\nHost: a.example\r\nAuthorization: Bearer ${jwt}\r\nConnection: close\r\n\r\n`)
  t.equal(statusOf(single), 200, 'each header once: served')
})

t.test('the session cookie sent twice is 400 bad_request, whichever copy comes first', async t => {
  const emulator = await startEmulator(t)
  const service = await startService(t, baseEnv(emulator, { JWT_COOKIE: 'sid' }))
  const jwt = signSession({ sub: 'ada', email: 'ada@example.com' })
  const planted = signSession({ sub: 'eve', email: 'eve@example.com' })
  for (const cookies of [[`sid=${planted}; sid=${jwt}`], [`sid=${jwt}`, `theme=dark; sid=${planted}`], [`a=1;sid=${jwt};  sid=${jwt}`]]) {
    const lines = cookies.map(cookie => `Cookie: ${cookie}\r\n`).join('')
    const answer = await rawExchange(service.url, `GET /chat-token HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines}Connection: close\r\n\r\n`)
    t.equal(statusOf(answer), 400, JSON.stringify(cookies))
    t.equal(bodyOf(answer).code, 'bad_request')
  }
  const unrelated = await rawExchange(service.url, `GET /chat-token HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: xsid=1; sid=${jwt}; sidx=2\r\nConnection: close\r\n\r\n`)
  t.equal(statusOf(unrelated), 200, 'cookies whose names merely contain the session cookie\'s are fine')
  t.equal(emulator.calls().length, 1)
})

t.test('duplicatedSingleton reads names case-insensitively and ignores repeatable headers', async t => {
  t.equal(duplicatedSingleton(['Host', 'a', 'Accept', 'x', 'HOST', 'b']), 'host')
  t.equal(duplicatedSingleton(['Accept', 'a', 'accept', 'b', 'Cookie', 'x', 'Cookie', 'y', 'X-Forwarded-For', '1', 'X-Forwarded-For', '2']), undefined)
  t.equal(duplicatedSingleton([]), undefined)
  for (const name of SINGLETON_HEADERS) t.equal(duplicatedSingleton([name, '1', name.toUpperCase(), '2']), name, name)
})
