import t from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import { until } from '../helper.js'
import { launchChromium, waitForEvents, waitForTokenFetches, waitForWidget, watchedPage, widgetView, type WatchedPage } from './chromium.js'
import { liveSite, SESSION_COOKIE, type LiveSite, type TokenReply } from './live-site.js'

/**
 * The site's tabs and the BroadcastChannel between them: what crosses it (notices, never a token or an
 * email), what a same-origin page without the helper can learn or change through it (nothing), and
 * how tabs follow a user switch or a logout (each by asking the service itself).
 */

t.setTimeout(240_000)
const browser = await launchChromium(t)

const ADA = 'ada@example.com'
const GRACE = 'grace@example.com'
const MALLORY = 'mallory@attacker.example'

async function newContext (t: { teardown: (fn: () => unknown) => void }): Promise<BrowserContext> {
  const context = await browser!.newContext()
  t.teardown(() => context.close())
  return context
}

const signIn = (context: BrowserContext, site: LiveSite, email: string): Promise<void> =>
  context.addCookies([{ name: SESSION_COOKIE, value: email, url: site.url }])

/** A tab of the site with the helper, identified as `email`, and a spy on its channel. */
async function visitorTab (context: BrowserContext, site: LiveSite, email: string): Promise<WatchedPage> {
  const tab = await watchedPage(context)
  await tab.page.goto(`${site.url}/`)
  await waitForWidget(tab.page, { identifiedAs: email })
  // Created after the helper's channel, so it gets each message after the helper has handled it.
  await tab.page.evaluate(name => {
    const seen: unknown[] = []
    Object.defineProperty(window, '__spied', { value: seen })
    new BroadcastChannel(name).onmessage = event => { seen.push(event.data) }
  }, site.channelName)
  return tab
}

/** Waits until the tab's channel has delivered `message` (so the helper has handled it). */
const delivered = (page: Page, message: unknown): Promise<unknown> =>
  page.waitForFunction(expected => (window as unknown as { __spied: unknown[] }).__spied.some(seen => JSON.stringify(seen) === expected), JSON.stringify(message))

const startIn = (page: Page): Promise<void> =>
  page.evaluate(() => (window as unknown as { ChatIdentity: { start: () => Promise<void> } }).ChatIdentity.start())

const logoutIn = (page: Page): Promise<void> =>
  page.evaluate(() => (window as unknown as { ChatIdentity: { logout: () => Promise<void> } }).ChatIdentity.logout())

interface Hostile {
  page: Page
  heard: () => Promise<string[]>
  send: (message: unknown) => Promise<void>
}

/** A page on the same origin without the helper, listening and posting on the helper's channel. */
async function hostilePage (context: BrowserContext, site: LiveSite): Promise<Hostile> {
  const page = await context.newPage()
  await page.goto(`${site.url}/plain`)
  await page.evaluate(name => {
    const heard: string[] = []
    const channel = new BroadcastChannel(name)
    channel.onmessage = event => { heard.push(JSON.stringify(event.data)) }
    Object.defineProperty(window, '__hostile', { value: { heard, channel } })
  }, site.channelName)
  type State = { __hostile: { heard: string[]; channel: BroadcastChannel } }
  return {
    page,
    heard: () => page.evaluate(() => [...(window as unknown as State).__hostile.heard]),
    send: message => page.evaluate(message => { (window as unknown as State).__hostile.channel.postMessage(message) }, message)
  }
}

const settingsOf = async (page: Page): Promise<{ email?: string; token?: string }> => {
  const { settings } = await widgetView(page)
  return { email: settings.identificationEmail, token: settings.identificationToken }
}

if (browser !== undefined) {
  t.test('a same-origin page without the helper hears no token or email, and asking gets it nothing', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await signIn(context, site, ADA)
    const hostile = await hostilePage(context, site)
    const first = await visitorTab(context, site, ADA)
    const second = await visitorTab(context, site, ADA)
    const { token } = site.tokenFor(ADA)
    await until('both page loads were announced', async () => (await hostile.heard()).length >= 2)

    await hostile.send({ t: 'ask' })
    await Promise.all([delivered(first.page, { t: 'ask' }), delivered(second.page, { t: 'ask' })])
    // Both tabs have handled the ask. Anything they post now comes after any answer to it.
    await startIn(first.page)
    await startIn(second.page)
    await until('both starts were announced', async () => (await hostile.heard()).length >= 4)

    const heard = await hostile.heard()
    t.equal(heard.length, 4, 'four notices (two page loads, two starts), no answer to the ask')
    for (const message of heard) {
      t.notOk(message.includes(token), `no token in ${message}`)
      t.notOk(message.toLowerCase().includes('ada'), `no email in ${message}`)
      t.match(JSON.parse(message), { t: 'changed', v: String })
      t.same(Object.keys(JSON.parse(message) as object).sort(), ['t', 'v'])
    }
    t.same([...first.pageErrors, ...second.pageErrors], [])
  })

  t.test('forged messages change no tab\'s identity: a forged notice costs one request, answered with the visitor\'s own', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await context.clock.install()
    await signIn(context, site, ADA)
    const tab = await visitorTab(context, site, ADA)
    const hostile = await hostilePage(context, site)
    const own = await settingsOf(tab.page)
    t.same(own, { email: ADA, token: site.tokenFor(ADA).token })
    const loads = (await widgetView(tab.page)).loads.length

    // The previous helper's form: a whole identity, offered as newer than anything.
    const forgedAt = Date.now() + 3600_000
    await hostile.send({
      t: 'token',
      identity: { email: MALLORY, token: 'token-for-mallory', expiresAt: new Date(forgedAt).toISOString(), expiry: forgedAt, fetchedAt: forgedAt }
    })
    const forgedChange = { t: 'changed', v: 'forged', identity: { email: MALLORY, token: 'token-for-mallory' } }
    await hostile.send(forgedChange)
    await delivered(tab.page, forgedChange)
    await waitForTokenFetches(tab.page, 2)
    t.same(await settingsOf(tab.page), own, 'still the visitor, after one request of its own')

    await hostile.send({ t: 'ended' })
    await delivered(tab.page, { t: 'ended' })
    await waitForTokenFetches(tab.page, 3)
    t.same(await settingsOf(tab.page), own, 'the service still answers for the visitor: nothing ended')
    // It asks again later (a real logout's session may end a moment after the notice).
    await tab.page.clock.fastForward(2_000)
    await waitForTokenFetches(tab.page, 4)
    await tab.page.clock.fastForward(10_000)
    await waitForTokenFetches(tab.page, 5)
    t.same(await settingsOf(tab.page), own)

    for (const garbage of [null, 'ended', { t: 'changed' }, { t: 'changed', v: 5 }, { t: 'logout' }, { t: 'ask' }]) await hostile.send(garbage)
    await delivered(tab.page, { t: 'ask' })
    t.equal((await tab.tokenFetches()).length, 5, 'malformed and unknown messages ask nothing')

    const view = await widgetView(tab.page)
    t.same(await settingsOf(tab.page), own)
    t.equal(view.loads.length, loads, 'the widget was never reloaded')
    t.same(view.clears, [])
    t.notOk((await tab.events()).some(event => event.name !== 'identified'), 'no anonymous or error event')
    t.notOk(JSON.stringify(await tab.events()).includes(MALLORY))
    t.ok(site.requests.every(request => request.session === ADA))
    t.same(tab.pageErrors, [])
  })

  t.test('a user switch in one tab: the other asks the service itself and shows the new person', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await signIn(context, site, ADA)
    const hostile = await hostilePage(context, site)
    const switching = await visitorTab(context, site, ADA)
    const other = await visitorTab(context, site, ADA)

    await signIn(context, site, GRACE)
    await startIn(switching.page)
    await waitForWidget(switching.page, { identifiedAs: GRACE })
    await waitForWidget(other.page, { identifiedAs: GRACE })
    const view = await widgetView(other.page)
    t.same(await settingsOf(other.page), { email: GRACE, token: site.tokenFor(GRACE).token })
    t.same(view.clears, [{ resetWidget: true }], 'the previous person\'s chat was cleared')
    t.same(view.loads.map(load => load.email), [ADA, GRACE])
    t.equal((await other.tokenFetches()).length, 2, 'the other tab fetched the new identity itself')

    const heard = (await hostile.heard()).join('\n')
    for (const secret of [ADA, GRACE, site.tokenFor(ADA).token, site.tokenFor(GRACE).token]) t.notOk(heard.includes(secret))
    t.same([...switching.pageErrors, ...other.pageErrors], [])
  })

  t.test('a switch announced while a tab is fetching: that tab asks again once its own answer is in', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await signIn(context, site, ADA)
    const switching = await visitorTab(context, site, ADA)
    const other = await visitorTab(context, site, ADA)

    // The other tab starts again (a re-render, say) and its request, sent as Ada, is held.
    let hold = true
    site.reply = (): TokenReply => {
      if (!hold) return 'session'
      hold = false
      return 'held'
    }
    await other.page.evaluate(() => { void (window as unknown as { ChatIdentity: { start: () => Promise<void> } }).ChatIdentity.start() })
    await until('the other tab\'s request is held', () => site.requests.at(-1)?.release !== undefined)
    const held = site.requests.at(-1)!

    await signIn(context, site, GRACE)
    await startIn(switching.page)
    await delivered(other.page, { t: 'changed', v: site.tokenFor(GRACE).expiresAt })
    held.release!()
    await waitForWidget(other.page, { identifiedAs: GRACE })
    t.equal(held.session, ADA, 'the held answer was for the previous person')
    t.same(await settingsOf(other.page), { email: GRACE, token: site.tokenFor(GRACE).token })
    t.same([...switching.pageErrors, ...other.pageErrors], [])
  })

  t.test('a tab whose clock is an hour behind: the other tabs still follow its user switch', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await signIn(context, site, ADA)
    const other = await visitorTab(context, site, ADA)
    const late = await watchedPage(context)
    await late.page.addInitScript(() => {
      const now = Date.now.bind(Date)
      Date.now = () => now() - 3600_000
    })
    await late.page.goto(`${site.url}/`)
    await waitForWidget(late.page, { identifiedAs: ADA })

    await signIn(context, site, GRACE)
    await startIn(late.page)
    await waitForWidget(other.page, { identifiedAs: GRACE })
    t.same(await settingsOf(other.page), { email: GRACE, token: site.tokenFor(GRACE).token })
  })

  t.test('logout in one tab: the others ask the service, and turn anonymous once the session has ended', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await context.clock.install()
    await signIn(context, site, ADA)
    const leaving = await visitorTab(context, site, ADA)
    const other = await visitorTab(context, site, ADA)

    await logoutIn(leaving.page)
    t.ok(site.requests.some(request => request.method === 'DELETE'))
    await waitForWidget(leaving.page, 'anonymous')
    // The other tab heard the notice and asked: the session is still there, so it stays for now.
    await waitForTokenFetches(other.page, 2)
    // The site ends the session after logout() resolved; the other tab's next check sees it.
    await context.clearCookies()
    await other.page.clock.fastForward(2_000)
    await waitForWidget(other.page, 'anonymous')
    t.same(await settingsOf(other.page), { email: undefined, token: undefined })
    t.same((await widgetView(other.page)).clears, [{ resetWidget: true }])
    t.match((await other.events()).at(-1), { name: 'anonymous', detail: { reason: 'unauthenticated', status: 401 } })
    t.same([...leaving.pageErrors, ...other.pageErrors], [])
  })

  t.test('a page loaded after the session ended tells the open tabs, which check and turn anonymous', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await signIn(context, site, ADA)
    const open = await visitorTab(context, site, ADA)
    // A server-rendered logout without logout(): the session cookie is simply gone.
    await context.clearCookies()
    const next = await watchedPage(context)
    await next.page.goto(`${site.url}/`)
    await waitForWidget(next.page, 'anonymous')
    await waitForWidget(open.page, 'anonymous')
    t.equal((await open.tokenFetches()).length, 2)
    t.same(await settingsOf(open.page), { email: undefined, token: undefined })
  })

  t.test('logout() when HubSpot\'s clear() throws: it still tells the other tabs and sends the DELETE', async t => {
    const site = await liveSite(t)
    const context = await newContext(t)
    await signIn(context, site, ADA)
    const hostile = await hostilePage(context, site)
    const tab = await visitorTab(context, site, ADA)
    await until('the page load was announced', async () => (await hostile.heard()).length >= 1)
    await tab.page.evaluate(() => {
      (window as unknown as { HubSpotConversations: { clear: () => void } }).HubSpotConversations.clear = () => { throw new Error('clear failed') }
    })
    await logoutIn(tab.page)
    t.ok(site.requests.some(request => request.method === 'DELETE'), 'the DELETE was sent')
    await until('the other tabs were told', async () => (await hostile.heard()).includes('{"t":"ended"}'))
    t.same(await settingsOf(tab.page), { email: undefined, token: undefined })
    const events = await tab.events()
    t.match(events.slice(-2), [{ name: 'error', detail: { message: 'clear failed' } }, { name: 'anonymous', detail: { reason: 'logout' } }])
    await waitForEvents(tab.page, 'anonymous')
    t.same(tab.pageErrors, [])
  })
}
