import t from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import { launchChromium, waitForEvents, waitForWidget, watchedPage, widgetView, type WatchedPage } from './chromium.js'
import { fakeSite, HELPER_AND_WIDGET, HUBSPOT, pageWith, SITE, type TokenAnswer } from './fake-site.js'

/** chat-identity.js on its own, in Chromium, against scripted /chat-token answers. */

t.setTimeout(240_000)
const browser = await launchChromium(t)

const START = '<script>ChatIdentity.start()</script>'
const STARTED_PAGE = pageWith(HELPER_AND_WIDGET + START)

async function newContext (t: { teardown: (fn: () => unknown) => void }): Promise<BrowserContext> {
  const context = await browser!.newContext()
  t.teardown(() => context.close())
  return context
}

async function open (context: BrowserContext): Promise<WatchedPage> {
  const watched = await watchedPage(context)
  await watched.page.goto(`${SITE}/`)
  return watched
}

/** The page's fetches to the site (the token service), leaving out the widget's own token checks. */
const siteFetches = async (fetchesStarted: () => Promise<string[]>): Promise<string[]> =>
  (await fetchesStarted()).filter(started => started.includes(` ${SITE}/`))

const callInPage = (page: Page, script: string): Promise<unknown> => page.evaluate(script)

if (browser !== undefined) {
  t.test('loadImmediately is false before HubSpot\'s loader runs, so the first load is already identified', async t => {
    const context = await newContext(t)
    // The loader is synchronous here: it runs the moment the helper has been evaluated.
    const site = await fakeSite(context, pageWith(`<script src="/chat-identity.js"></script><script src="${HUBSPOT}/__emulator/widget.js"></script>`), () => site.identified('ada@example.com'))
    const { page, pageErrors } = await open(context)
    await page.waitForFunction(() => 'HubSpotConversations' in window)
    let view = await widgetView(page)
    t.equal(view.settings.loadImmediately, false)
    t.equal(view.loaded, false, 'HubSpot did not load the widget on its own')

    await callInPage(page, 'ChatIdentity.start()')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    view = await widgetView(page)
    t.same(view.loads.map(load => [load.email, load.verdict]), [['ada@example.com', 'identified']])
    t.same(pageErrors, [])
  })

  for (const [status, reason] of [[401, 'unauthenticated'], [403, 'forbidden'], [422, 'no-email']] as const) {
    t.test(`${status}: an anonymous widget, never an identity`, async t => {
      const context = await newContext(t)
      const site = await fakeSite(context, STARTED_PAGE, () => ({ status, body: { code: 'x' } }))
      const { page, pageErrors, events } = await open(context)
      await waitForWidget(page, 'anonymous')
      const view = await widgetView(page)
      t.same(view.loads, [{ email: '', token: '', verdict: 'anonymous' }])
      t.equal(view.settings.identificationEmail, undefined)
      t.equal(view.settings.identificationToken, undefined)
      t.same(await events(), [{ name: 'anonymous', detail: { reason, status } }])
      t.equal(site.requests.length, 1, 'not retried')
      t.same(pageErrors, [])
    })
  }

  t.test('429 then 200: waits as Retry-After says, then identifies', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, STARTED_PAGE, n => n === 0
      ? { status: 429, headers: { 'retry-after': '1' }, body: { code: 'rate_limited' } }
      : site.identified('ada@example.com'))
    const { page } = await open(context)
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    t.equal(site.requests.length, 2)
    const gap = site.requests[1]!.at - site.requests[0]!.at
    t.ok(gap >= 950, `the retry came ${gap} ms later`)
  })

  t.test('503 throughout: three attempts, then anonymous; a long Retry-After is not waited for', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, STARTED_PAGE, () => ({ status: 503, headers: { 'retry-after': '0' }, body: { code: 'upstream_unavailable' } }))
    const { page, pageErrors, events } = await open(context)
    await waitForWidget(page, 'anonymous')
    t.equal(site.requests.length, 3)
    t.same(await events(), [{ name: 'anonymous', detail: { reason: 'unavailable', status: 503 } }])
    t.same(pageErrors, [])

    const later = await newContext(t)
    const busy = await fakeSite(later, STARTED_PAGE, () => ({ status: 429, headers: { 'retry-after': '3600' }, body: {} }))
    const second = await open(later)
    await waitForWidget(second.page, 'anonymous')
    t.equal(busy.requests.length, 1, 'an hour is not waited for: anonymous at once')
  })

  t.test('network failures, malformed answers and server errors never throw into the page', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, STARTED_PAGE, n => n === 0 ? 'network-error' : site.identified('ada@example.com'))
    const { page, pageErrors } = await open(context)
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    t.equal(site.requests.length, 2, 'a network failure is retried')
    t.same(pageErrors, [])

    const answers: TokenAnswer[] = [
      { status: 200, body: { email: 'ada@example.com', expiresAt: new Date().toISOString() } },
      { status: 200, body: 'not an object' },
      { status: 500, body: { code: 'internal_error' } }
    ]
    for (const answer of answers) {
      const other = await newContext(t)
      await fakeSite(other, STARTED_PAGE, () => answer)
      const watched = await open(other)
      await waitForWidget(watched.page, 'anonymous')
      await waitForEvents(watched.page, 'anonymous')
      const seen = await watched.events()
      t.match(seen, [{ name: 'error', detail: { status: answer.status } }, { name: 'anonymous', detail: { reason: 'error' } }], JSON.stringify(answer.body))
      t.equal((await widgetView(watched.page)).settings.identificationEmail, undefined)
      t.same(watched.pageErrors, [])
    }
  })

  t.test('HubSpot\'s SDK arriving late: the helper waits for it through hsConversationsOnReady', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, pageWith('<script src="/chat-identity.js"></script>'), () => site.identified('ada@example.com'))
    const { page } = await open(context)
    await callInPage(page, 'ChatIdentity.start()')
    t.equal(await callInPage(page, 'window.hsConversationsOnReady.length'), 1, 'queued for the SDK')
    await page.addScriptTag({ url: `${HUBSPOT}/__emulator/widget.js` })
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
  })

  t.test('a widget the page had loaded itself is reloaded with the identity', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, pageWith(HELPER_AND_WIDGET), () => site.identified('ada@example.com'))
    const { page } = await open(context)
    await page.waitForFunction(() => 'HubSpotConversations' in window)
    await callInPage(page, 'HubSpotConversations.widget.load()')
    await waitForWidget(page, 'anonymous')
    await callInPage(page, 'ChatIdentity.start()')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    const view = await widgetView(page)
    t.same(view.loads.map(load => load.email), ['', 'ada@example.com'])
    t.same(view.clears, [], 'an anonymous visitor logging in is the same person: nothing to clear')
  })

  t.test('options: tokenUrl, credentials and headers (a function, called for every request), loadWidget', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, pageWith(HELPER_AND_WIDGET), n => n === 0 ? site.identified('ada@example.com') : { status: 204 })
    const { page } = await open(context)
    await context.addCookies([{ name: 'session', value: 'secret-cookie', url: SITE }])
    await callInPage(page, `ChatIdentity.start({
      tokenUrl: '/api/chat-token', credentials: 'omit', loadWidget: false,
      headers: () => ({ authorization: 'Bearer call-' + (window.calls = (window.calls || 0) + 1) })
    })`)
    await page.waitForFunction(() => 'HubSpotConversations' in window)
    let view = await widgetView(page)
    t.equal(view.settings.identificationEmail, 'ada@example.com', 'the identification is set')
    t.equal(view.loaded, false, 'but loading is left to the page')
    t.equal(site.requests[0]?.url, `${SITE}/api/chat-token`)
    t.equal(site.requests[0]?.headers.authorization, 'Bearer call-1')
    t.equal(site.requests[0]?.headers.cookie, undefined, 'credentials: omit')

    await callInPage(page, 'HubSpotConversations.widget.load()')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    await callInPage(page, 'ChatIdentity.logout()')
    t.match(site.requests[1], { method: 'DELETE', url: `${SITE}/api/chat-token`, headers: { authorization: 'Bearer call-2' } })
    view = await widgetView(page)
    t.same(view.clears, [{ resetWidget: true }])
    await waitForWidget(page, 'anonymous')
  })

  t.test('logout(): before start() or with the service down, it resolves and never throws', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, pageWith(HELPER_AND_WIDGET), () => 'network-error')
    const { page, pageErrors, events } = await open(context)
    await callInPage(page, 'ChatIdentity.logout()')
    t.equal(site.requests[0]?.method, 'DELETE')
    t.match(await events(), [{ name: 'anonymous', detail: { reason: 'logout' } }, { name: 'error' }])
    t.same(pageErrors, [])
  })

  t.test('the ES module build (with loadImmediately set inline, since modules run late)', async t => {
    const context = await newContext(t)
    const site = await fakeSite(context, pageWith(`<script>window.hsConversationsSettings = { loadImmediately: false }</script>
      <script async src="${HUBSPOT}/__emulator/widget.js"></script>
      <script type="module">import { start } from '/chat-identity.mjs'; start()</script>`), () => site.identified('ada@example.com'))
    const { page } = await open(context)
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    t.same((await widgetView(page)).loads.map(load => load.email), ['ada@example.com'])
    t.equal(await callInPage(page, 'typeof window.ChatIdentity'), 'undefined', 'no global from the module')
  })

  t.test('refresh at 80 % of the remaining life; a 401 then means the session ended', async t => {
    const context = await newContext(t)
    await context.clock.install()
    const tenMinutes = 10 * 60_000
    const site = await fakeSite(context, STARTED_PAGE, n => n < 2
      ? site.identified('ada@example.com', { expiresInMs: tenMinutes })
      : { status: 401, body: { code: 'token_expired' } })
    const { page, pageErrors, events, fetchesStarted } = await open(context)
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    const first = (await widgetView(page)).settings.identificationToken

    await page.clock.fastForward(7 * 60_000)
    t.equal((await siteFetches(fetchesStarted)).length, 1, 'nothing at 70 %')
    await page.clock.fastForward(90_000)
    await waitForEvents(page, 'identified', 2)
    t.equal(site.requests.length, 2)
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    const view = await widgetView(page)
    t.not(view.settings.identificationToken, first)
    t.equal(view.loads.length, 2, 'the widget was reloaded with the new token')
    t.same(view.clears, [])

    await page.clock.fastForward(9 * 60_000)
    await waitForWidget(page, 'anonymous')
    t.equal(site.requests.length, 3)
    t.match((await events()).at(-1), { name: 'anonymous', detail: { reason: 'unauthenticated', status: 401 } })
    t.same((await widgetView(page)).clears, [{ resetWidget: true }], 'the identified chat is cleared')
    t.same(pageErrors, [])
  })

  t.test('a client clock hours ahead still measures the token\'s life on the service\'s clock', async t => {
    const context = await newContext(t)
    await context.clock.install({ time: Date.now() + 5 * 3600_000 })
    const site = await fakeSite(context, STARTED_PAGE, () => site.identified('ada@example.com', { expiresInMs: 10 * 60_000 }))
    const { page, fetchesStarted } = await open(context)
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    await page.clock.fastForward(2 * 60_000)
    t.same(await siteFetches(fetchesStarted), [`GET ${SITE}/chat-token`], 'no early refresh')
    await page.clock.fastForward(6 * 60_000 + 30_000)
    await waitForEvents(page, 'identified', 2)
    t.equal(site.requests.length, 2, 'refreshed at 80 % of ten minutes')
  })
}
