import t from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import { launchChromium, runClockUntil, tokenFetchesOf, waitForEvents, waitForWidget, watchedPage, type WatchedPage } from './chromium.js'
import { HELPER_AND_WIDGET, liveSite, pageWith, SESSION_COOKIE, type LiveSite, type TokenReply } from './live-site.js'

/**
 * How long the helper may take, measured on the page's fake clock: a service that never answers, a
 * body that stalls after its headers, retries, and refreshes under a clock hours off. Each test
 * reports its figure as a comment; docs/browser.md quotes them.
 */

t.setTimeout(300_000)
const browser = await launchChromium(t)

const ADA = 'ada@example.com'
const T0 = Date.parse('2026-12-07T09:00:00Z')

async function newContext (t: { teardown: (fn: () => unknown) => void }, site: LiveSite): Promise<BrowserContext> {
  const context = await browser!.newContext()
  t.teardown(() => context.close())
  await context.addCookies([{ name: SESSION_COOKIE, value: ADA, url: site.url }])
  return context
}

/** The page with its clock stopped at `time`: fake time moves only when a test moves it. */
async function pausedPage (context: BrowserContext, site: LiveSite, time = T0): Promise<WatchedPage> {
  await context.clock.install({ time })
  await context.clock.pauseAt(time + 1)
  const tab = await watchedPage(context)
  await tab.page.goto(`${site.url}/`)
  return tab
}

const anonymousYet = async (page: Page): Promise<boolean> =>
  (await page.evaluate(() => (window as unknown as { __chatEvents: Array<{ name: string }> }).__chatEvents)).some(event => event.name === 'anonymous')

if (browser !== undefined) {
  t.test('a service that never answers: two attempts of at most 6 s, anonymous 12 s after start', async t => {
    const site = await liveSite(t)
    site.reply = () => 'no-answer'
    const context = await newContext(t, site)
    const { page, events } = await pausedPage(context, site)
    const took = await runClockUntil(page, {
      until: () => anonymousYet(page),
      // Every request the page sent has reached the server before fake time moves on.
      settled: async () => (await tokenFetchesOf(page)).length === site.requests.length,
      stepMs: 100,
      maxMs: 60_000
    })
    t.comment(`anonymous after ${took} ms of page time, ${site.requests.length} requests`)
    t.ok(took <= 12_100, `${took} ms`)
    t.equal(site.requests.length, 2)
    t.same(await events(), [{ name: 'anonymous', detail: { reason: 'unavailable' } }])
    await page.clock.runFor(100)
    await waitForWidget(page, 'anonymous')
  })

  t.test('a body that stalls after 200 headers: the same deadline ends it, retried, then anonymous', async t => {
    const site = await liveSite(t)
    site.reply = () => 'stall-body'
    const context = await newContext(t, site)
    const { page, pageErrors, events } = await pausedPage(context, site)
    const took = await runClockUntil(page, {
      until: () => anonymousYet(page),
      // Every request has its headers and the start of its body before fake time moves on.
      settled: async () => {
        const fetches = await tokenFetchesOf(page)
        return fetches.every(entry => entry.headers) && site.stalled() === fetches.length
      },
      stepMs: 100,
      maxMs: 60_000
    })
    t.comment(`anonymous after ${took} ms of page time, ${site.stalled()} stalled bodies`)
    t.ok(took <= 12_100, `${took} ms`)
    t.equal(site.stalled(), 2, 'the stalled attempt was retried once within the budget')
    t.same(await events(), [{ name: 'anonymous', detail: { reason: 'unavailable' } }])
    t.same(pageErrors, [])
  })

  t.test('504 is retried like 503', async t => {
    const site = await liveSite(t)
    site.reply = (n): TokenReply => n < 2 ? { status: 504, body: { code: 'upstream_timeout' } } : 'session'
    const context = await newContext(t, site)
    const tab = await watchedPage(context)
    await tab.page.goto(`${site.url}/`)
    await waitForWidget(tab.page, { identifiedAs: ADA })
    t.equal(site.requests.length, 3)
    t.same((await tab.events()).map(event => event.name), ['identified'])
  })

  t.test('a client clock 13 h ahead that cannot read the service\'s Date: refreshes back off to every 32 min, not every minute', async t => {
    const site = await liveSite(t)
    // As a cross-origin answer looks when the service does not expose Date.
    site.sendDate = false
    const context = await newContext(t, site)
    const { page, pageErrors } = await pausedPage(context, site, Date.now() + 13 * 3600_000)
    await runClockUntil(page, {
      until: async () => (await tokenFetchesOf(page)).length > 0,
      settled: async () => true,
      stepMs: 10,
      maxMs: 1_000
    })
    const from = (await tokenFetchesOf(page))[0]!.at
    const threeHours = 3 * 3600_000
    await runClockUntil(page, {
      until: async () => await page.evaluate(() => Date.now()) >= from + threeHours,
      settled: async () => (await tokenFetchesOf(page)).every(entry => entry.done),
      stepMs: 20_000,
      maxMs: threeHours + 60_000
    })
    const fetches = await tokenFetchesOf(page)
    const gaps = fetches.slice(1).map((entry, i) => Math.round((entry.at - fetches[i]!.at) / 60_000))
    t.comment(`${fetches.length} requests in 3 h; minutes between them: ${gaps.join(', ')}`)
    t.ok(fetches.length <= 11, `${fetches.length} requests in three hours`)
    t.same(gaps.slice(0, 6), [1, 2, 4, 8, 16, 32])
    t.ok(gaps.slice(6).every(gap => gap === 32), 'then every 32 minutes')
    await waitForEvents(page, 'identified', fetches.length)
    t.same(pageErrors, [])
  })

  t.test('a headers function that throws: an error event at once, no request, anonymous', async t => {
    const site = await liveSite(t)
    site.pages.set('/', pageWith(HELPER_AND_WIDGET))
    const context = await newContext(t, site)
    const tab = await watchedPage(context)
    await tab.page.goto(`${site.url}/`)
    await tab.page.evaluate(() => (window as unknown as { ChatIdentity: { start: (options: object) => Promise<void> } }).ChatIdentity.start({
      headers: () => { throw new Error('no access token yet') }
    }))
    t.same(await tab.events(), [
      { name: 'error', detail: { message: 'no access token yet' } },
      { name: 'anonymous', detail: { reason: 'error' } }
    ])
    t.equal(site.requests.length, 0)
    await waitForWidget(tab.page, 'anonymous')
    t.same(tab.pageErrors, [])
  })

  t.test('start() twice at once (React StrictMode) makes one request; start(null) means the defaults', async t => {
    const site = await liveSite(t)
    site.pages.set('/', pageWith(HELPER_AND_WIDGET))
    const context = await newContext(t, site)
    const tab = await watchedPage(context)
    await tab.page.goto(`${site.url}/`)
    await tab.page.evaluate(() => {
      const { start } = (window as unknown as { ChatIdentity: { start: (options?: object | null) => Promise<void> } }).ChatIdentity
      return Promise.all([start(), start()])
    })
    await waitForWidget(tab.page, { identifiedAs: ADA })
    t.equal(site.requests.length, 1)
    t.same((await tab.events()).map(event => event.name), ['identified'])

    await tab.page.evaluate(() => (window as unknown as { ChatIdentity: { start: (options: null) => Promise<void> } }).ChatIdentity.start(null))
    t.equal(site.requests.length, 2)
    t.same((await tab.events()).map(event => event.name), ['identified', 'identified'])
    t.same(tab.pageErrors, [])
  })
}
