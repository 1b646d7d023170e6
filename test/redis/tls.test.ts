import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import { request } from 'undici'
import { ACCESS_TOKEN, JWT_SECRET, bearer, signSession, startEmulator, until } from '../helper.js'
import { freePort, redisSkipReason } from '../redis-helper.js'
import { startServiceProcess } from '../service-process.js'

/**
 * rediss:// with an ACL user, against a real redis-server that speaks only TLS and knows no default
 * user. The certificate comes from a private CA, which the service trusts the documented way
 * (NODE_EXTRA_CA_CERTS), so the service runs as a process of its own.
 */

const skip = await redisSkipReason() || (hasOpenssl() ? false : 'openssl is not installed: it makes the test certificate')
t.setTimeout(90_000)

function hasOpenssl (): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const USER = 'chat-token'
const PASSWORD = 'tls-acl-password-for-the-test'

t.test('rediss:// with an ACL user name: the replica shares its cache through a TLS-only Redis', { skip }, async t => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-token-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })

  const port = await freePort()
  const server = spawn('redis-server', [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert, '--tls-auth-clients', 'no',
    '--user', 'default', 'off', '--user', USER, 'on', `>${PASSWORD}`, '~*', '&*', '+@all'
  ], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(async () => {
    if (server.exitCode !== null) return
    const exited = once(server, 'exit')
    server.kill('SIGKILL')
    await exited
  })
  await new Promise<void>((resolve, reject) => {
    let output = ''
    server.once('exit', code => reject(new Error(`redis-server exited (${code}): ${output}`)))
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
  })
  const admin = new Redis({ host: 'localhost', port, username: USER, password: PASSWORD, tls: { ca: readFileSync(cert) }, maxRetriesPerRequest: 1 })
  t.teardown(() => admin.disconnect())
  admin.on('error', () => {})

  const emulator = await startEmulator(t)
  const env = {
    HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN,
    HUBSPOT_BASE_URL: emulator.url,
    JWT_SECRET,
    REDIS_URL: `rediss://${USER}:${PASSWORD}@localhost:${port}`,
    NODE_EXTRA_CA_CERTS: cert
  }
  const service = await startServiceProcess(t, env)
  const redisCheck = async (url: string): Promise<string | undefined> => (JSON.parse(await (await request(`${url}/readyz`)).body.text()) as { checks: Record<string, string> }).checks.redis
  await until('the replica reaches Redis over TLS as the ACL user', async () => await redisCheck(service.url) === 'ok')

  const session = bearer(signSession({ sub: 'ada', email: 'ada@example.com' }))
  const first = await request(`${service.url}/chat-token`, { headers: session })
  t.equal(first.statusCode, 200)
  const token = (await first.body.json() as { token: string }).token
  t.equal((await admin.keys('ct:v1:tok:*')).length, 1, 'the token is cached in the TLS Redis')

  // A second replica finds it there.
  const other = await startServiceProcess(t, env)
  await until('the second replica reaches Redis too', async () => await redisCheck(other.url) === 'ok')
  const second = await request(`${other.url}/chat-token`, { headers: session })
  const body = await second.body.text()
  t.equal(second.statusCode, 200, body)
  t.equal((JSON.parse(body) as { token: string }).token, token)
  t.equal(emulator.calls().length, 1, 'HubSpot was asked once for both replicas')

  const started = JSON.stringify(service.lines.find(line => line.msg === 'chat-token started'))
  t.notMatch(started, PASSWORD, 'the start-up line masks the password')
  t.match(started, `rediss://${USER}:[masked]@localhost:${port}`)
})
