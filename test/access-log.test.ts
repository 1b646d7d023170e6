import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { type AccessLine, createAccessLog } from '../src/access-log.js'

/** The hand-built access line: pino's exact shape, hostile strings escaped, nothing when info is off. */

function capture (): { stream: Writable; lines: string[] } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(chunk.toString()); done() } })
  return { stream, lines }
}

const fixedTime = 1_765_000_000_123
const sample: AccessLine = { reqId: 'req-1', method: 'GET', path: '/chat-token', status: 401, ms: 0.4, code: 'invalid_token', user: 'aGFzaA' }

t.test('the same keys in the same order and the same values as pino writes for the same fields', async t => {
  const ours = capture()
  createAccessLog(true, ours.stream, () => fixedTime)(sample)
  const theirs = capture()
  pino({ level: 'info', timestamp: () => `,"time":${fixedTime}` }, theirs.stream).info({ ...sample }, 'request')
  t.equal(ours.lines.length, 1)
  t.equal(ours.lines[0], theirs.lines[0], 'byte for byte')
  const withoutOptional = capture()
  createAccessLog(true, withoutOptional.stream, () => fixedTime)({ ...sample, status: 200, code: undefined, user: undefined })
  const pinoWithout = capture()
  pino({ level: 'info', timestamp: () => `,"time":${fixedTime}` }, pinoWithout.stream).info({ ...sample, status: 200, code: undefined, user: undefined }, 'request')
  t.equal(withoutOptional.lines[0], pinoWithout.lines[0], 'absent fields are left out, as pino leaves out undefined')
})

t.test('hostile paths and request ids stay inside their JSON strings', async t => {
  const hostile = ['"}{"level":60,"msg":"forged', 'a\nb\r\n{"x":1}', '\u2028\u2029', '\u0000\u001f\u007f', '\\', '/chat-token/\ud800', 'é 🙂']
  for (const text of hostile) {
    const out = capture()
    createAccessLog(true, out.stream)({ ...sample, path: text, reqId: text })
    t.equal(out.lines.length, 1)
    t.equal(out.lines[0]!.indexOf('\n'), out.lines[0]!.length - 1, 'one line: the only newline ends it')
    const parsed = JSON.parse(out.lines[0]!) as Record<string, unknown>
    // The description names code points: a raw U+2028 would break the test's own TAP output.
    const codePoints = Array.from(text, char => (char.codePointAt(0) ?? 0).toString(16)).join(' ')
    t.equal(parsed.path, JSON.parse(JSON.stringify(text)), `path [${codePoints}] round-trips`)
    t.equal(parsed.reqId, parsed.path)
    t.equal(parsed.level, 30)
    t.equal(parsed.msg, 'request')
  }
})

t.test('with info turned off (LOG_LEVEL=warn and above) nothing is written', async t => {
  const out = capture()
  const log = pino({ level: 'warn' }, out.stream)
  createAccessLog(log.isLevelEnabled('info'), out.stream)(sample)
  t.equal(out.lines.length, 0)
})
