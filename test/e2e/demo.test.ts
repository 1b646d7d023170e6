import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Browser, Page } from 'playwright-core'
import { startDemoStack, type DemoStack } from '../../dev/demo/stack.js'
import { launchChromium, waitForEvents, waitForWidget, watchedPage, widgetView } from './chromium.js'

/**
 * The whole flow in headless Chromium: the demo site, the service behind it, the HubSpot emulator and
 * its stand-in widget, exactly as `npm run demo` runs them.
 */

const SCREENSHOT = new URL('../../docs/demo-identified.png', import.meta.url)
// Browser steps are slow on a busy two-core machine; the file is one process, so this is its budget.
t.setTimeout(240_000)
const browser = await launchChromium(t)

type Setup = { stack: DemoStack; browser: Browser }

async function setup (t: { teardown: (fn: () => unknown) => void }, serviceEnv: Record<string, string> = {}): Promise<Setup> {
  const stack = await startDemoStack({ logLevel: 'silent', serviceEnv })
  t.teardown(() => stack.close())
  return { stack, browser: browser! }
}

/** Logs in through the page's form (a full page load, like a server-rendered site). */
async function logIn (page: Page, email: string): Promise<void> {
  await page.fill('#login input[name=email]', email)
  await page.click('#login button')
  await page.waitForSelector('#signed-in:not([hidden])')
}

const tokenCreates = (stack: DemoStack): number => stack.emulator.calls().filter(call => call.path.endsWith('/tokens/create')).length

if (browser !== undefined) {
  t.test('login: identified as the right email with a genuine token; the token never shows in events', async t => {
    const { stack } = await setup(t)
    const context = await browser.newContext({ viewport: { width: 900, height: 540 } })
    t.teardown(() => context.close())
    const { page, pageErrors, events } = await watchedPage(context)
    await page.goto(stack.url)
    await waitForWidget(page, 'anonymous')

    await logIn(page, 'ada@example.com')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    const view = await widgetView(page)
    t.equal(view.settings.identificationEmail, 'ada@example.com')
    t.equal(view.settings.loadImmediately, false)
    const token = view.settings.identificationToken!
    t.equal(stack.emulator.issued(token)?.email, 'ada@example.com', 'the emulator issued that token for that email')
    t.same(view.loads.map(load => load.email), ['ada@example.com'], 'the widget loaded once on this page, identified')
    const seen = await events()
    t.match(seen.at(-1), { name: 'identified', detail: { email: 'ada@example.com', expiresAt: String } })
    t.notOk(JSON.stringify(seen).includes(token), 'no event carries the token')
    t.same(pageErrors, [])

    // The committed screenshot is rewritten only when asked, so a test run leaves the tree as it was.
    if (process.env.UPDATE_SCREENSHOTS === '1') {
      await mkdir(new URL('.', SCREENSHOT), { recursive: true })
      await page.screenshot({ path: fileURLToPath(SCREENSHOT) })
    } else {
      t.ok((await page.screenshot()).length > 0, 'the identified page renders')
    }
  })

  t.test('reload: identified again without a new HubSpot call (the service\'s token cache)', async t => {
    const { stack } = await setup(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    const { page } = await watchedPage(context)
    await page.goto(stack.url)
    await logIn(page, 'ada@example.com')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    const creates = tokenCreates(stack)
    const asked = stack.site.routed('GET', '/chat-token')

    await page.reload()
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    t.equal(stack.site.routed('GET', '/chat-token'), asked + 1, 'the new page asked the service')
    t.equal(tokenCreates(stack), creates, 'the service answered from its cache')
  })

  t.test('logout: DELETE /chat-token, settings cleared, widget reset and anonymous', async t => {
    const { stack } = await setup(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    const { page, pageErrors, events } = await watchedPage(context)
    await page.goto(stack.url)
    await logIn(page, 'ada@example.com')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })

    await page.click('#logout button')
    await page.waitForSelector('#signed-out:not([hidden])')
    await waitForWidget(page, 'anonymous')
    const view = await widgetView(page)
    t.equal(view.settings.identificationEmail, undefined)
    t.equal(view.settings.identificationToken, undefined)
    t.same(view.clears, [{ resetWidget: true }], 'HubSpotConversations.clear({ resetWidget: true })')
    t.equal(view.loads.at(-1)?.email, '', 'the new widget instance is anonymous')
    t.equal(stack.site.routed('DELETE', '/chat-token'), 1)
    t.match((await events()).at(-1), { name: 'anonymous', detail: { reason: 'logout' } })

    // The next person on this computer: a fresh page is anonymous too.
    await page.reload()
    await waitForWidget(page, 'anonymous')
    t.match((await events()).at(-1), { name: 'anonymous', detail: { reason: 'unauthenticated', status: 401 } })
    t.same(pageErrors, [])
  })

  t.test('user switch inside the single-page app: identified as the new user, without a reload', async t => {
    const { stack } = await setup(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    const { page, pageErrors } = await watchedPage(context)
    await page.goto(stack.url)
    await logIn(page, 'ada@example.com')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    await page.evaluate(() => { (window as unknown as { samePage: boolean }).samePage = true })

    await page.fill('#switch input[name=email]', 'grace@example.com')
    await page.click('#switch button')
    await waitForWidget(page, { identifiedAs: 'grace@example.com' })
    const view = await widgetView(page)
    t.equal(stack.emulator.issued(view.settings.identificationToken!)?.email, 'grace@example.com')
    t.same(view.loads.map(load => load.email), ['ada@example.com', 'grace@example.com'])
    t.same(view.clears, [{ resetWidget: true }], 'the previous person\'s chat is cleared')
    t.ok(await page.evaluate(() => (window as unknown as { samePage?: boolean }).samePage), 'no page load happened')
    t.same(pageErrors, [])
  })

  t.test('past 80 % of the token\'s life: refreshed and the widget reloaded, without a page load', async t => {
    const { stack } = await setup(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    await context.clock.install()
    const { page, pageErrors, events } = await watchedPage(context)
    await page.goto(stack.url)
    await logIn(page, 'ada@example.com')
    await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    await waitForEvents(page, 'identified', 1)
    const first = await widgetView(page)
    const expiresAt = Date.parse(String((await events()).at(-1)?.detail.expiresAt))
    const asked = stack.site.routed('GET', '/chat-token')
    await page.evaluate(() => { (window as unknown as { samePage: boolean }).samePage = true })

    const life = expiresAt - await page.evaluate(() => Date.now())
    await page.clock.fastForward(Math.ceil(life * 0.85))
    await waitForEvents(page, 'identified', 2)
    t.equal(stack.site.routed('GET', '/chat-token'), asked + 1, 'one refresh request')
    const second = await widgetView(page)
    t.equal(second.settings.identificationEmail, 'ada@example.com')
    t.equal(stack.emulator.issued(second.settings.identificationToken!)?.email, 'ada@example.com')
    if (second.settings.identificationToken !== first.settings.identificationToken) {
      t.equal(second.loads.length, first.loads.length + 1, 'the widget was reloaded with the new token')
      await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    }
    t.ok(await page.evaluate(() => (window as unknown as { samePage?: boolean }).samePage), 'no page load happened')
    t.same(pageErrors, [])
  })

  t.test('the service answering 503: bounded retries, then an anonymous widget and no page error', async t => {
    // No HubSpot retries inside the service, so each browser attempt is one quick 503.
    const { stack } = await setup(t, { HUBSPOT_MAX_RETRIES: '0' })
    const context = await browser.newContext()
    t.teardown(() => context.close())
    await context.addCookies([{ name: 'demo_session', value: stack.site.sessionFor('ada@example.com'), url: stack.url }])
    stack.emulator.setFaults({ random: { rate: 1, faults: [{ kind: 'status', status: 503 }] } })
    const { page, pageErrors, events } = await watchedPage(context)
    await page.goto(stack.url)
    await waitForWidget(page, 'anonymous')
    t.match((await events()).at(-1), { name: 'anonymous', detail: { reason: 'unavailable', status: 503 } })
    t.equal(stack.site.routed('GET', '/chat-token'), 3, 'three attempts, then it gave up')
    const view = await widgetView(page)
    t.equal(view.settings.identificationEmail, undefined)
    t.same(view.loads.map(load => load.email), [''], 'one anonymous load')
    t.same(pageErrors, [])
  })

  t.test('two tabs of the site, opened together: each asks the service, which calls HubSpot once', async t => {
    const { stack } = await setup(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    await context.addCookies([{ name: 'demo_session', value: stack.site.sessionFor('ada@example.com'), url: stack.url }])
    const tabs = await Promise.all([watchedPage(context), watchedPage(context)])
    await Promise.all(tabs.map(async ({ page }) => {
      await page.goto(stack.url)
      await waitForWidget(page, { identifiedAs: 'ada@example.com' })
    }))
    t.equal(stack.site.routed('GET', '/chat-token'), 2, 'no tab takes a token from another')
    t.equal(tokenCreates(stack), 1, 'the service minted one token for both')
    const [first, second] = await Promise.all(tabs.map(({ page }) => widgetView(page)))
    t.equal(first?.settings.identificationToken, second?.settings.identificationToken, 'both tabs use the same token')

    // A third tab later: its own request, answered from the service's cache.
    const third = await watchedPage(context)
    await third.page.goto(stack.url)
    await waitForWidget(third.page, { identifiedAs: 'ada@example.com' })
    t.equal(stack.site.routed('GET', '/chat-token'), 3)
    t.equal(tokenCreates(stack), 1)

    // Logging out in one tab: the others check with the service and go anonymous once the session is gone.
    await third.page.click('#logout button')
    await Promise.all(tabs.map(({ page }) => waitForWidget(page, 'anonymous')))
  })
}
