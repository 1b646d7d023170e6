/**
 * chat-identity.js: puts the chat-token service's answer into the HubSpot chat widget, so a logged-in
 * visitor chats as themselves. Built for browsers (ES2020, no dependencies) by scripts/build-browser.mjs
 * as a classic script (the `ChatIdentity` global) and an ES module; served by the service at
 * GET /chat-identity.js and /chat-identity.mjs. docs/browser.md says how to use it.
 *
 * Rules it keeps: the widget never loads before the identification is known, never carries an email
 * without the token minted for it in the same answer, no token or email ever leaves this tab except
 * to HubSpot's settings, and nothing here ever throws into the page.
 */

export interface StartOptions {
  /** The chat-token route, relative to the page (default `/chat-token`). */
  tokenUrl?: string
  /** fetch credentials mode (default `include`: the session cookie goes along). */
  credentials?: RequestCredentials
  /** Extra request headers (e.g. Authorization); a function is called before every request. */
  headers?: HeadersInit | (() => HeadersInit | Promise<HeadersInit>)
  /** false: set the identification but leave the widget's first load() to the page (default true). */
  loadWidget?: boolean
}

/** What the page's listeners receive; the token itself is never put in an event. */
export type AnonymousReason = 'unauthenticated' | 'forbidden' | 'no-email' | 'unavailable' | 'error' | 'logout'

interface Settings {
  loadImmediately?: boolean
  identificationEmail?: string
  identificationToken?: string
}

interface HubSpotSdk {
  widget: { load: () => void; remove: () => void; status: () => { loaded: boolean } }
  clear: (options?: { resetWidget?: boolean }) => void
}

interface HubSpotWindow {
  hsConversationsSettings?: Settings
  hsConversationsOnReady?: Array<() => void>
  HubSpotConversations?: HubSpotSdk
}

/** A token as this tab holds it; `expiry` and `refreshAt` are in this machine's clock. */
interface Identity {
  email: string
  token: string
  expiresAt: string
  expiry: number
  refreshAt?: number
}

type Anonymous = { reason: AnonymousReason; status?: number }
type Outcome = { identity: Identity } | Anonymous
type Answer = { email?: unknown; token?: unknown; expiresAt?: unknown } | null

/**
 * All that tabs tell each other: this tab's identity changed (`v`: the service's expiresAt of its new
 * token, the same in every tab that holds that token) or ended. Never a token or an email: a tab that
 * hears a notice asks the service itself, so a forged notice costs a request (three for 'ended') and
 * changes nothing the service does not confirm.
 */
type Notice = { t: 'changed'; v: string } | { t: 'ended' }

const EVENT_PREFIX = 'chat-identity:'
const MAX_ATTEMPTS = 3
/** Everything one token request may take, retries and their waits included. */
const BUDGET_MS = 12_000
/** One attempt, from sending the request to the last byte of the answer. */
const ATTEMPT_MS = 6_000
const REFRESH_AT = 0.8
/** Floor between refreshes; it doubles (up to 32 min) while answers keep looking spent on this clock. */
const MIN_REFRESH_MS = 60_000
/** HubSpot tokens live 12 h: a later expiresAt is not believed (it would also overflow setTimeout). */
const MAX_LIFETIME_MS = 12 * 3600_000
/** Told that the identity ended while the service still answers, a tab asks again this much later. */
const RECHECKS_MS = [2_000, 10_000]

const page = window as unknown as HubSpotWindow

let options: StartOptions = {}
let started = false
let starting: Promise<void> | undefined
let current: Identity | undefined
/** Token and email the widget has, or will load with (''= anonymous; undefined = not known). */
let shownToken: string | undefined
let shownEmail = ''
/** Bumped by every start() and logout(): an answer that arrives for an older one is dropped. */
let generation = 0
let busy = 0
/** The last notice heard while this tab was fetching, judged once its answer is in. */
let heard: Notice | undefined
let spentRefreshes = 0
let refreshTimer: ReturnType<typeof setTimeout> | undefined
let recheckTimer: ReturnType<typeof setTimeout> | undefined
let channel: BroadcastChannel | undefined
/** Channel name: one per token URL, so two services on one site do not mix notices. */
let channelName = ''
/** The helper's callback while it waits in hsConversationsOnReady for HubSpot's SDK. */
let readyCallback: (() => void) | undefined
let onReady = page.hsConversationsOnReady

function settings (): Settings {
  const found = page.hsConversationsSettings ?? (page.hsConversationsSettings = {})
  found.loadImmediately = false
  return found
}

// At evaluation, so it is in place before HubSpot's loader (included after this script) reads it.
settings()
try {
  // HubSpot's own snippet assigns `window.hsConversationsOnReady = [...]`: the helper's waiting
  // callback is added to the new array instead of being dropped with the old one.
  Object.defineProperty(window, 'hsConversationsOnReady', {
    configurable: true,
    enumerable: true,
    get: () => onReady,
    set: (value: Array<() => void>) => {
      onReady = value
      if (readyCallback !== undefined && Array.isArray(value) && !value.includes(readyCallback)) value.push(readyCallback)
    }
  })
} catch {
  // Declared with `var` before the helper: not redefinable; pushing into it still works.
}

function emit (name: string, detail: object): void {
  try {
    window.dispatchEvent(new CustomEvent(EVENT_PREFIX + name, { detail }))
  } catch {
    // Only a browser without CustomEvent gets here; reporting must never stop the flow.
  }
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** Runs `work`; a failure becomes an error event (and `fallback`), never an exception in the page. */
async function guard (work: () => Promise<void> | void, fallback?: () => void): Promise<void> {
  try {
    await work()
  } catch (error) {
    emit('error', { message: messageOf(error) })
    try {
      fallback?.()
    } catch {
      // The fallback touches only HubSpot's SDK; if that fails too there is nothing left to do.
    }
  }
}

function post (notice: Notice): void {
  try {
    channel?.postMessage(notice)
  } catch {
    // A closed channel only leaves other tabs to find out at their next refresh.
  }
}

const announce = (outcome: Outcome): void => post('identity' in outcome ? { t: 'changed', v: outcome.identity.expiresAt } : { t: 'ended' })

/** 401, 403, 422: the service said who (not) — unlike 'unavailable' and 'error', which say nothing. */
const refused = (outcome: Anonymous): boolean => outcome.reason !== 'unavailable' && outcome.reason !== 'error'

function onNotice (notice: Notice): void {
  if (!started) return
  if (busy > 0) {
    heard = notice
    return
  }
  // Already where the notice says: nothing to ask.
  if (notice.t === 'changed' ? notice.v === current?.expiresAt : current === undefined) return
  void guard(() => follow(generation, notice.t === 'ended' ? RECHECKS_MS : []))
}

/** After an answer: a notice heard while fetching is judged against the new state. */
function replay (): void {
  const notice = heard
  if (busy === 0 && notice !== undefined) {
    heard = undefined
    onNotice(notice)
  }
}

/** Timers stall in sleeping laptops and background tabs: catch up when the page is seen or back online. */
function catchUp (): void {
  if (document.visibilityState === 'visible' && busy === 0 && current !== undefined && Date.now() >= (current.refreshAt ?? 0)) {
    void guard(() => refresh(generation))
  }
}

/** Once: the first start()'s (or logout()'s) token URL names the channel. */
function openChannel (): void {
  if (channelName !== '') return
  channelName = EVENT_PREFIX + new URL(options.tokenUrl ?? '/chat-token', location.href).href
  if (typeof BroadcastChannel === 'function') {
    channel = new BroadcastChannel(channelName)
    channel.onmessage = ({ data }: MessageEvent<Partial<{ t: unknown; v: unknown }> | null>) => {
      if (data?.t === 'ended') onNotice({ t: 'ended' })
      else if (data?.t === 'changed' && typeof data.v === 'string') onNotice({ t: 'changed', v: data.v })
    }
  }
  for (const name of ['focus', 'pageshow', 'online']) window.addEventListener(name, catchUp)
  document.addEventListener('visibilitychange', catchUp)
}

async function requestHeaders (): Promise<HeadersInit | undefined> {
  const headers = options.headers
  return typeof headers === 'function' ? await headers() : headers
}

/** One request; `ms` covers the headers and (for a GET that succeeded) the whole body. */
async function call (method: 'GET' | 'DELETE', headers: HeadersInit | undefined, ms: number): Promise<[Response, string]> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), ms)
  try {
    const response = await fetch(options.tokenUrl ?? '/chat-token', {
      method,
      credentials: options.credentials ?? 'include',
      headers,
      cache: 'no-store',
      // A logout followed at once by navigation must still reach the service.
      keepalive: method === 'DELETE',
      signal: abort.signal
    })
    return [response, method === 'GET' && response.ok ? await response.text() : '']
  } finally {
    clearTimeout(timer)
  }
}

function retryAfterMs (response: Response, attempt: number): number {
  const header = response.headers.get('retry-after') ?? ''
  const seconds = Number(header)
  if (header !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  if (!Number.isNaN(date)) return Math.max(0, date - Date.now())
  return backoffMs(attempt)
}

const backoffMs = (attempt: number): number => 1000 * 2 ** (attempt - 1) * (0.5 + Math.random() / 2)

const pause = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

const refusals: Record<number, AnonymousReason> = { 401: 'unauthenticated', 403: 'forbidden', 422: 'no-email' }

/** GET /chat-token, retried on 429, 503, 504 and network errors, all within BUDGET_MS. */
async function fetchToken (): Promise<Outcome> {
  const end = performance.now() + BUDGET_MS
  for (let attempt = 1; ; attempt++) {
    let headers: HeadersInit | undefined
    try {
      headers = await requestHeaders()
    } catch (error) {
      // The page's own code failed: retrying it will not help.
      emit('error', { message: messageOf(error) })
      return { reason: 'error' }
    }
    let waitMs: number
    let status: number | undefined
    try {
      const [response, body] = await call('GET', headers, Math.min(ATTEMPT_MS, end - performance.now()))
      status = response.status
      if (response.ok) return parseAnswer(response, body)
      const refusal = refusals[status]
      if (refusal !== undefined) return { reason: refusal, status }
      if (status !== 429 && status !== 503 && status !== 504) {
        emit('error', { message: 'unexpected answer from the token service', status })
        return { reason: 'error', status }
      }
      waitMs = retryAfterMs(response, attempt)
    } catch {
      // Offline, timed out (headers or body) or refused by CORS: as transient as a 503.
      waitMs = backoffMs(attempt)
    }
    // A wait that leaves no second for the next attempt is not worth it: anonymous now.
    if (attempt >= MAX_ATTEMPTS || performance.now() + waitMs > end - 1000) return { reason: 'unavailable', status }
    await pause(waitMs)
  }
}

function parseAnswer (response: Response, text: string): Outcome {
  let body: Answer = null
  try {
    body = JSON.parse(text) as Answer
  } catch {
    // Checked below like any other malformed answer.
  }
  const { email, token, expiresAt } = body ?? {}
  const now = Date.now()
  // The client's clock may be hours off: measure the token's life on the service's clock when it says.
  const serverNow = Date.parse(response.headers.get('date') ?? '')
  const expiry = Date.parse(String(expiresAt)) + (Number.isNaN(serverNow) ? 0 : now - serverNow)
  if (typeof email !== 'string' || email === '' || typeof token !== 'string' || token === '' ||
      typeof expiresAt !== 'string' || Number.isNaN(expiry)) {
    emit('error', { message: 'the token service answered without email, token and expiresAt', status: response.status })
    return { reason: 'error', status: response.status }
  }
  return { identity: { email, token, expiresAt, expiry: Math.min(expiry, now + MAX_LIFETIME_MS) } }
}

/** This tab's own answer from the service; undefined when start() or logout() came meanwhile. */
async function obtain (gen: number): Promise<Outcome | undefined> {
  busy++
  try {
    const outcome = await fetchToken()
    return gen === generation ? outcome : undefined
  } finally {
    busy--
  }
}

function scheduleRefresh (identity: Identity, ms: number): void {
  clearTimeout(refreshTimer)
  identity.refreshAt = Date.now() + ms
  refreshTimer = setTimeout(() => { void guard(() => refresh(generation)) }, ms)
}

function use (identity: Identity): void {
  current = identity
  const ms = (identity.expiry - Date.now()) * REFRESH_AT
  // A clock that makes every answer look spent (hours ahead, the service's Date unreadable) would
  // otherwise refresh every minute for good: 1, 2, 4 … 32 minutes apart instead.
  spentRefreshes = ms < MIN_REFRESH_MS ? Math.min(spentRefreshes + 1, 6) : 0
  scheduleRefresh(identity, Math.max(ms, MIN_REFRESH_MS * 2 ** (spentRefreshes - 1)))
  syncWidget()
  emit('identified', { email: identity.email, expiresAt: identity.expiresAt })
}

function goAnonymous (reason: AnonymousReason, status?: number): void {
  current = undefined
  clearTimeout(refreshTimer)
  syncWidget()
  emit('anonymous', status === undefined ? { reason } : { reason, status })
}

async function refresh (gen: number): Promise<void> {
  const held = current
  const outcome = await obtain(gen)
  if (outcome === undefined) return
  if ('identity' in outcome) {
    use(outcome.identity)
    if (outcome.identity.token !== held?.token) announce(outcome)
  } else if (refused(outcome)) {
    // The session ended (logged out elsewhere, expired): the old identity must not stay on screen.
    goAnonymous(outcome.reason, outcome.status)
    announce(outcome)
  } else {
    const left = held === undefined ? 0 : held.expiry - Date.now()
    if (held === undefined || left < 2 * MIN_REFRESH_MS) goAnonymous(outcome.reason, outcome.status)
    // The held token is still good for a while: keep it and try again later.
    else scheduleRefresh(held, Math.min(5 * MIN_REFRESH_MS, left / 2))
  }
  replay()
}

/** Another tab's notice: this tab asks the service and shows what it says (never what a tab said). */
async function follow (gen: number, rechecks: number[]): Promise<void> {
  clearTimeout(recheckTimer)
  const outcome = await obtain(gen)
  if (outcome === undefined) return
  if ('identity' in outcome) {
    if (outcome.identity.token !== current?.token) use(outcome.identity)
    // An ended identity the service still answers for: the other tab's site may not have ended the
    // session yet (logout() comes first). Ask again a little later.
    const [wait, ...more] = rechecks
    if (wait !== undefined) recheckTimer = setTimeout(() => { void guard(() => follow(generation, more)) }, wait)
  } else if (refused(outcome) && current !== undefined) {
    goAnonymous(outcome.reason, outcome.status)
  }
  replay()
}

/** Brings the settings (at once) and the widget (once HubSpot's SDK is there) in line with `current`. */
function syncWidget (): void {
  const wanted = current
  const s = settings()
  // Written before the SDK exists: a page that loads the widget itself finds them already there.
  if (wanted === undefined) {
    delete s.identificationEmail
    delete s.identificationToken
  } else {
    s.identificationEmail = wanted.email
    s.identificationToken = wanted.token
  }
  const token = wanted?.token ?? ''
  const sdk = page.HubSpotConversations
  if (sdk?.widget.status().loaded) {
    if (shownToken === token) return
    if (shownEmail !== '' && shownEmail !== wanted?.email) {
      // Another person now: drop the previous one's chat cookies and conversations with the widget.
      sdk.clear({ resetWidget: true })
      if (!sdk.widget.status().loaded) sdk.widget.load()
    } else {
      sdk.widget.remove()
      sdk.widget.load()
    }
  } else if (sdk === undefined) {
    waitForSdk()
  } else if (options.loadWidget !== false) {
    sdk.widget.load()
  }
  // Not loaded yet: whoever loads it next reads these settings.
  shownToken = token
  shownEmail = wanted?.email ?? ''
}

function waitForSdk (): void {
  if (readyCallback !== undefined) return
  const queue = page.hsConversationsOnReady ?? (page.hsConversationsOnReady = [])
  queue.push(readyCallback = () => {
    readyCallback = undefined
    void guard(syncWidget)
  })
}

/**
 * Identifies the visitor to the chat widget and loads it; resolves when that is done (identified or
 * anonymous), never rejects. Call it again after a login or user switch in a single-page app. Calls
 * made together (React StrictMode runs effects twice) share one request; the last one's options win.
 */
export function start (startOptions?: StartOptions | null): Promise<void> {
  options = startOptions ?? {}
  // Whatever fails, the visitor still gets a widget, anonymous.
  return starting ??= guard(async () => {
    await Promise.resolve()
    starting = undefined
    settings()
    started = true
    openChannel()
    const gen = ++generation
    clearTimeout(refreshTimer)
    clearTimeout(recheckTimer)
    const outcome = await obtain(gen)
    if (outcome === undefined) return
    if ('identity' in outcome) {
      use(outcome.identity)
      announce(outcome)
    } else {
      goAnonymous(outcome.reason, outcome.status)
      if (refused(outcome)) announce(outcome)
    }
    replay()
  }, () => goAnonymous('error'))
}

/**
 * Forgets the visitor here, resets the widget, tells the site's other tabs (which then ask the service
 * themselves), and asks the service to drop its cached token (DELETE, while the session cookie still
 * exists: call this before ending the session). Resolves when the service has answered; never rejects.
 * Each step runs even when an earlier one failed.
 */
export async function logout (): Promise<void> {
  generation++
  heard = undefined
  current = undefined
  clearTimeout(refreshTimer)
  clearTimeout(recheckTimer)
  await guard(() => {
    const s = settings()
    delete s.identificationEmail
    delete s.identificationToken
    shownToken = shownEmail = ''
  })
  await guard(() => {
    const sdk = page.HubSpotConversations
    if (sdk === undefined) return
    const wasLoaded = sdk.widget.status().loaded
    // Chat cookies and the widget instance go, so the next person does not see this one's conversations.
    sdk.clear({ resetWidget: true })
    if (!sdk.widget.status().loaded && (wasLoaded || (started && options.loadWidget !== false))) sdk.widget.load()
  })
  await guard(() => {
    openChannel()
    post({ t: 'ended' })
  })
  emit('anonymous', { reason: 'logout' })
  await guard(async () => {
    const [response] = await call('DELETE', await requestHeaders(), ATTEMPT_MS)
    if (!response.ok && response.status !== 401) emit('error', { message: 'the token service refused the logout', status: response.status })
  })
}
