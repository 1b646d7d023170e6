import t from 'tap'
import type { BrowserContext } from 'playwright-core'
import { launchChromium, waitForEvents, waitForTokenFetches, waitForWidget, watchedPage, widgetView, type WatchedPage } from './chromium.js'
import { liveSite, pageWith, SESSION_COOKIE, WIDGET_URL, type LiveSite } from './live-site.js'

/**
 * The helper and HubSpot's SDK on one page: a SDK that arrives late, HubSpot's own
 * `hsConversationsOnReady` snippet, and catching up after the wall clock jumped while no timer ran.
 */

t.setTimeout(240_000)
const browser = await launchChromium(t)

const ADA = 'ada@example.com'
const HELPER = '<script src="/chat-identity.js"></script>'
const SDK = `<script async src="${WIDGET_URL}"></script>`

async function openSite (t: { teardown: (fn: () => unknown) => void }, site: LiveSite, html?: string): Promise<{ context: BrowserContext; tab: WatchedPage }> {
  if (html !== undefined) site.pages.set('/', html)
  const context = await browser!.newContext()
  t.teardown(() => context.close())
  await context.addCookies([{ name: SESSION_COOKIE, value: ADA, url: site.url }])
  const tab = await watchedPage(context)
  // A held SDK holds the load event too.
  await tab.page.goto(`${site.url}/`, { waitUntil: 'domcontentloaded' })
  return { context, tab }
}

if (browser !== undefined) {
  t.test('loadWidget: false and a SDK that arrives late: the page\'s own first load is already identified', async t => {
    const site = await liveSite(t)
    const release = site.holdWidget()
    const { tab } = await openSite(t, site, pageWith(`${HELPER}<script>
      // The page loads the widget itself, as soon as HubSpot is ready (queued before the helper's).
      (window.hsConversationsOnReady = window.hsConversationsOnReady || []).push(() => window.HubSpotConversations.widget.load())
      ChatIdentity.start({ loadWidget: false })
    </script>${SDK}`))
    await waitForEvents(tab.page, 'identified')
    t.equal(await tab.page.evaluate(() => 'HubSpotConversations' in window), false, 'the SDK is not there yet')
    release()
    await waitForWidget(tab.page, { identifiedAs: ADA })
    const view = await widgetView(tab.page)
    t.same(view.loads.map(load => [load.email, load.verdict]), [[ADA, 'identified']], 'one load, identified')
    t.same(tab.pageErrors, [])
  })

  t.test('HubSpot\'s snippet assigning hsConversationsOnReady after the helper queued its callback: the widget still loads, identified', async t => {
    const site = await liveSite(t)
    const release = site.holdWidget()
    const { tab } = await openSite(t, site, pageWith(`${HELPER}<script>ChatIdentity.start()</script>${SDK}`))
    await waitForEvents(tab.page, 'identified')
    // HubSpot's documented form replaces the array the helper's callback waits in.
    await tab.page.evaluate(() => {
      const w = window as unknown as { hsConversationsOnReady: Array<() => void>; pageReady?: boolean }
      w.hsConversationsOnReady = [() => { w.pageReady = true }]
    })
    release()
    await waitForWidget(tab.page, { identifiedAs: ADA })
    t.equal(await tab.page.evaluate(() => (window as unknown as { pageReady?: boolean }).pageReady), true, 'the page\'s callback ran too')
    t.same((await widgetView(tab.page)).loads.map(load => load.email), [ADA])
    t.same(tab.pageErrors, [])
  })

  t.test('HubSpot\'s snippet assigned before the helper: both callbacks run', async t => {
    const site = await liveSite(t)
    const release = site.holdWidget()
    const { tab } = await openSite(t, site, pageWith(`<script>
      window.hsConversationsOnReady = [() => { window.pageReady = true }]
    </script>${HELPER}<script>ChatIdentity.start()</script>${SDK}`))
    await waitForEvents(tab.page, 'identified')
    release()
    await waitForWidget(tab.page, { identifiedAs: ADA })
    t.equal(await tab.page.evaluate(() => (window as unknown as { pageReady?: boolean }).pageReady), true)
  })

  t.test('after a wall-clock jump with no timer run, focus, pageshow and online each catch up', async t => {
    const site = await liveSite(t)
    const context = await browser.newContext()
    t.teardown(() => context.close())
    await context.clock.install()
    await context.addCookies([{ name: SESSION_COOKIE, value: ADA, url: site.url }])
    const { page, tokenFetches, pageErrors } = await watchedPage(context)
    await page.goto(`${site.url}/`)
    await waitForWidget(page, { identifiedAs: ADA })
    let count = 1
    for (const name of ['focus', 'pageshow', 'online']) {
      // A laptop wakes up: ten hours later by the wall clock, past 80 % of the token's life; no timer ran.
      await page.clock.setSystemTime(await page.evaluate(() => Date.now()) + 10 * 3600_000)
      t.equal((await tokenFetches()).length, count, `no request before ${name}`)
      await page.evaluate(name => { window.dispatchEvent(new Event(name)) }, name)
      await waitForTokenFetches(page, ++count)
      t.pass(`${name}: refreshed`)
    }
    // Cheap when nothing is due: no request.
    for (const name of ['focus', 'pageshow', 'online']) await page.evaluate(name => { window.dispatchEvent(new Event(name)) }, name)
    t.equal((await tokenFetches()).length, count)
    t.same(pageErrors, [])
  })
}
