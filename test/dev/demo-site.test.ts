import t from 'tap'
import { request } from 'undici'
import { startDemoStack, type DemoStack } from '../../dev/demo/stack.js'

/** The demo's plumbing without a browser: stand-in widget, login cookie, and routing to the service. */

async function stack (t: { teardown: (fn: () => unknown) => void }): Promise<DemoStack> {
  const started = await startDemoStack({ logLevel: 'silent' })
  t.teardown(() => started.close())
  return started
}

const cookieFrom = (setCookie: string | string[] | undefined): string => String(setCookie).split(';', 1)[0]!

t.test('the emulator serves the stand-in widget, and lets pages ask whether a token is genuine', async t => {
  const { emulator } = await stack(t)
  const widget = await request(`${emulator.url}/__emulator/widget.js`)
  t.equal(widget.statusCode, 200)
  t.equal(widget.headers['content-type'], 'text/javascript; charset=utf-8')
  t.match(await widget.body.text(), /window\.HubSpotConversations = api/)
  const post = await request(`${emulator.url}/__emulator/widget.js`, { method: 'POST' })
  await post.body.dump()
  t.equal(post.statusCode, 405)

  const unknown = await request(`${emulator.url}/__emulator/tokens/nope`, { headers: { origin: 'http://site.example' } })
  await unknown.body.dump()
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.headers['access-control-allow-origin'], '*')
})

t.test('login sets an HttpOnly, SameSite=Lax session cookie; /chat-token and its DELETE go through the site', async t => {
  const demo = await stack(t)
  const form = await request(`${demo.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'email=Ada%40Example.com'
  })
  await form.body.dump()
  t.equal(form.statusCode, 303)
  t.equal(form.headers.location, '/')
  t.match(String(form.headers['set-cookie']), /^demo_session=[^;]+; Max-Age=43200; Path=\/; HttpOnly; SameSite=Lax$/)
  const cookie = cookieFrom(form.headers['set-cookie'])

  const page = await request(`${demo.url}/`, { headers: { cookie } })
  t.match(await page.body.text(), /Signed in as <span id="who">ada@example.com<\/span>/)

  const token = await request(`${demo.url}/chat-token`, { headers: { cookie } })
  const body = await token.body.json() as { email: string; token: string }
  t.equal(token.statusCode, 200)
  t.equal(body.email, 'ada@example.com')
  t.equal(demo.emulator.issued(body.token)?.email, 'ada@example.com')
  t.equal(demo.site.routed('GET', '/chat-token'), 1)

  // The site keeps its Host for the service, so the cookie's origin check sees the site's own origin.
  const own = await request(`${demo.url}/chat-token`, { method: 'DELETE', headers: { cookie, origin: demo.url } })
  await own.body.dump()
  t.equal(own.statusCode, 204)
  const foreign = await request(`${demo.url}/chat-token`, { method: 'DELETE', headers: { cookie, origin: 'https://evil.example' } })
  t.equal(foreign.statusCode, 403)
  t.equal((await foreign.body.json() as { code: string }).code, 'origin_not_allowed')
})

t.test('the page\'s own fetch login and logout answer 204; a bad email is refused', async t => {
  const demo = await stack(t)
  const json = { 'content-type': 'application/json', accept: 'application/json' }
  const login = await request(`${demo.url}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: 'grace@example.com' }) })
  await login.body.dump()
  t.equal(login.statusCode, 204)
  t.match(String(login.headers['set-cookie']), /^demo_session=/)
  const bad = await request(`${demo.url}/login`, { method: 'POST', headers: json, body: JSON.stringify({ email: 'not an email' }) })
  await bad.body.dump()
  t.equal(bad.statusCode, 400)
  const logout = await request(`${demo.url}/logout`, { method: 'POST', headers: { accept: 'application/json' } })
  await logout.body.dump()
  t.equal(logout.statusCode, 204)
  t.match(String(logout.headers['set-cookie']), /^demo_session=; Max-Age=0;|^demo_session=; Expires=Thu, 01 Jan 1970/)
})

t.test('the helper is served through the site with the service\'s caching headers', async t => {
  const demo = await stack(t)
  const script = await request(`${demo.url}/chat-identity.js`, { headers: { 'accept-encoding': 'gzip' } })
  await script.body.dump()
  t.equal(script.statusCode, 200)
  t.equal(script.headers['content-encoding'], 'gzip')
  t.match(String(script.headers.etag), /^"[\w-]+-gz"$/)
})
