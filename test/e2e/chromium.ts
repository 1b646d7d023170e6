import { existsSync } from 'node:fs'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { childrenOfThisProcess, shareOwnPriority } from '../process-priority.js'

/**
 * Debian's Chromium driven by playwright-core; no browser is ever downloaded. The flags are the ones
 * this machine kind needs (its closed network refuses Chromium's background connections). Playwright's
 * launch() gives every run a new, empty profile directory of its own.
 */
export const CHROMIUM_PATH = '/usr/bin/chromium'
const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

type TapTest = {
  teardown: (fn: () => unknown) => void
  plan: (n: number, reason?: string) => void
  fail: (message: string) => void
}

/**
 * One browser per test process, shared by the files of a batch: every test opens a context of its own
 * (no cookies, storage or cache in common with another), and a Chromium start costs a few seconds of
 * CPU. It closes when the process's tests have ended (the teardown of tap's root test, which every
 * file passes here).
 */
let shared: Promise<Browser> | undefined

/** The browser for a test file, or undefined when the file was skipped (outside CI only). */
export async function launchChromium (t: TapTest): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM_PATH)) {
    const message = `${CHROMIUM_PATH} is missing: install it with apt-get install -y chromium`
    if (process.env.CI !== undefined && process.env.CI !== '') {
      t.fail(`${message} (CI must run the browser tests)`)
      return undefined
    }
    process.stderr.write(`\n*** browser tests SKIPPED: ${message} ***\n\n`)
    t.plan(0, `skip: ${message}`)
    return undefined
  }
  if (shared === undefined) {
    shared = chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS, headless: true })
    const browser = await shared
    // Playwright starts Chromium in a session of its own, which would not yield as the lane does.
    for (const pid of childrenOfThisProcess()) shareOwnPriority(pid)
    t.teardown(() => browser.close())
  }
  return await shared
}

export interface ChatEvent {
  name: 'identified' | 'anonymous' | 'error'
  detail: Record<string, unknown>
}

/** A page that records the helper's DOM events and every uncaught error. */
export interface WatchedPage {
  page: Page
  pageErrors: Error[]
  events: () => Promise<ChatEvent[]>
  /** Every fetch() the page has called so far, as `METHOD url`. */
  fetchesStarted: () => Promise<string[]>
  /** The page's requests to a chat-token URL, in order, on the page's own (possibly fake) clock. */
  tokenFetches: () => Promise<TokenFetch[]>
}

export interface TokenFetch {
  method: string
  /** Date.now() in the page when fetch() was called. */
  at: number
  /** The response headers arrived. */
  headers: boolean
  /** Over: failed, aborted, or answered and (for a GET that succeeded) its body read to the end. */
  done: boolean
}

export async function watchedPage (context: BrowserContext): Promise<WatchedPage> {
  const page = await context.newPage()
  const pageErrors: Error[] = []
  page.on('pageerror', error => { pageErrors.push(error) })
  await page.addInitScript(() => {
    const seen: Array<{ name: string; detail: unknown }> = []
    Object.defineProperty(window, '__chatEvents', { value: seen })
    for (const name of ['identified', 'anonymous', 'error']) {
      window.addEventListener(`chat-identity:${name}`, event => { seen.push({ name, detail: (event as CustomEvent).detail }) })
    }
    // Counted as the page calls fetch, not as requests arrive: a test can then tell that nothing was
    // sent without waiting for something that should not happen.
    const started: string[] = []
    Object.defineProperty(window, '__fetchesStarted', { value: started })
    const tokenFetches: TokenFetch[] = []
    Object.defineProperty(window, '__tokenFetches', { value: tokenFetches })
    const pageFetch = window.fetch.bind(window)
    window.fetch = (input, init) => {
      const method = init?.method ?? 'GET'
      const url = new URL(input instanceof Request ? input.url : String(input), location.href)
      started.push(`${method} ${url.href}`)
      if (!url.pathname.endsWith('/chat-token')) return pageFetch(input, init)
      const entry = { method, at: Date.now(), headers: false, done: false }
      tokenFetches.push(entry)
      const finish = (): void => { entry.done = true }
      return pageFetch(input, init).then(response => {
        entry.headers = true
        if (!response.ok || method !== 'GET') {
          finish()
        } else {
          const text = response.text.bind(response)
          response.text = () => text().finally(finish)
        }
        return response
      }, (error: unknown) => {
        finish()
        throw error
      })
    }
  })
  return {
    page,
    pageErrors,
    events: () => page.evaluate(() => (window as unknown as { __chatEvents: ChatEvent[] }).__chatEvents),
    fetchesStarted: () => page.evaluate(() => [...(window as unknown as { __fetchesStarted: string[] }).__fetchesStarted]),
    tokenFetches: () => tokenFetchesOf(page)
  }
}

export function tokenFetchesOf (page: Page): Promise<TokenFetch[]> {
  return page.evaluate(() => (window as unknown as { __tokenFetches: TokenFetch[] }).__tokenFetches.map(entry => ({ ...entry })))
}

/** Waits until the page has made at least `count` chat-token requests and every one of them is over. */
export async function waitForTokenFetches (page: Page, count: number): Promise<TokenFetch[]> {
  await page.waitForFunction(count => {
    const fetches = (window as unknown as { __tokenFetches: TokenFetch[] }).__tokenFetches
    return fetches.length >= count && fetches.every(entry => entry.done)
  }, count)
  return tokenFetchesOf(page)
}

/**
 * Moves a paused page clock forward in `stepMs` steps until `until()` holds, and returns how far it
 * moved. Before each step `settled()` must hold, so real network work (which fake time does not
 * wait for) has caught up: the clock never runs ahead of a request still on its way.
 */
export async function runClockUntil (page: Page, options: {
  until: () => Promise<boolean>
  settled: () => Promise<boolean>
  stepMs: number
  maxMs: number
}): Promise<number> {
  const startedAt = await page.evaluate(() => Date.now())
  for (;;) {
    const now = await page.evaluate(() => Date.now())
    if (await options.until()) return now - startedAt
    if (now - startedAt > options.maxMs) throw new Error(`not reached within ${options.maxMs} ms of page time`)
    while (!await options.settled()) await new Promise(resolve => setImmediate(resolve))
    await page.clock.runFor(options.stepMs)
  }
}

/** Waits until at least `count` events named `name` were seen on the page. */
export async function waitForEvents (page: Page, name: ChatEvent['name'], count = 1): Promise<void> {
  await page.waitForFunction(([name, count]) =>
    (window as unknown as { __chatEvents: ChatEvent[] }).__chatEvents.filter(event => event.name === name).length >= count,
  [name, count] as const)
}

/** Waits for the stand-in widget's verdict: identified as `email`, or anonymous. */
export async function waitForWidget (page: Page, expected: { identifiedAs: string } | 'anonymous'): Promise<void> {
  const state = expected === 'anonymous' ? 'anonymous' : 'identified'
  const email = expected === 'anonymous' ? '' : expected.identifiedAs
  await page.waitForFunction(([state, email]) => {
    const box = document.getElementById('hs-emulator-chat')
    return box?.dataset.state === state && box.dataset.email === email
  }, [state, email] as const)
}

export interface WidgetView {
  settings: { loadImmediately?: boolean; identificationEmail?: string; identificationToken?: string }
  loads: Array<{ email: string; token: string; verdict: string }>
  clears: Array<{ resetWidget: boolean }>
  loaded: boolean
}

/** What HubSpot's side of the page holds: the settings and what the stand-in widget was asked to do. */
export function widgetView (page: Page): Promise<WidgetView> {
  return page.evaluate(() => {
    const w = window as unknown as {
      hsConversationsSettings?: WidgetView['settings']
      HubSpotConversations?: { emulator: Omit<WidgetView, 'settings' | 'loaded'>; widget: { status: () => { loaded: boolean } } }
    }
    const sdk = w.HubSpotConversations
    return {
      settings: { ...w.hsConversationsSettings },
      loads: sdk === undefined ? [] : sdk.emulator.loads.map(load => ({ ...load })),
      clears: sdk === undefined ? [] : [...sdk.emulator.clears],
      loaded: sdk?.widget.status().loaded ?? false
    }
  })
}
