/**
 * chat-identity.js: puts the chat-token service's answer into the HubSpot chat widget, so a logged-in
 * visitor chats as themselves. Built for browsers (ES2020, no dependencies) by scripts/build-browser.mjs
 * as a classic script (the `ChatIdentity` global) and an ES module; served by the service at
 * GET /chat-identity.js and /chat-identity.mjs. The README's "Browser integration" says how to use it.
 *
 * Rules it keeps: the widget never loads before the identification is known, never carries an email
 * without the token minted for it in the same answer, and nothing here ever throws into the page.
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

/** A token as this tab holds it; `expiry` and `fetchedAt` are in this machine's clock. */
interface Identity {
  email: string
  token: string
  expiresAt: string
  expiry: number
  fetchedAt: number
}

type Outcome = { identity: Identity } | { reason: AnonymousReason; status?: number }

type Message = { t: 'ask' } | { t: 'token'; identity: Identity } | { t: 'logout' }

const EVENT_PREFIX = 'chat-identity:'
/** How long a new page waits for another tab to offer its token before fetching one itself. */
const ASK_WAIT_MS = 250
const MAX_ATTEMPTS = 3
/** A Retry-After longer than this is not waited for: the visitor gets an anonymous widget now. */
const MAX_RETRY_WAIT_MS = 10_000
const REQUEST_TIMEOUT_MS = 10_000
const REFRESH_AT = 0.8
/** Floor between refreshes, so a bad expiresAt or clock cannot turn into a request loop. */
const MIN_REFRESH_MS = 60_000
/** HubSpot tokens live 12 h: a later expiresAt is not believed (it would also overflow setTimeout). */
const MAX_LIFETIME_MS = 12 * 3600_000

const page = window as unknown as HubSpotWindow

let options: StartOptions = {}
let started = false
let current: Identity | undefined
/** Newest token another tab announced, kept for when this tab next needs one. */
let heard: Identity | undefined
/** Token and email the widget was last loaded with by us ('' = anonymous; undefined = not by us). */
let shownToken: string | undefined
let shownEmail = ''
/** Bumped by every start() and logout(): an answer that arrives for an older one is dropped. */
let generation = 0
let busy = 0
let refreshTimer: ReturnType<typeof setTimeout> | undefined
let syncQueued = false
let channel: BroadcastChannel | undefined
/** Channel and lock name: one per token URL, so two services on one site do not mix tokens. */
let lockName = EVENT_PREFIX
let answerAsk: ((identity: Identity) => void) | undefined

function settings (): Settings {
  const found = page.hsConversationsSettings ?? (page.hsConversationsSettings = {})
  found.loadImmediately = false
  return found
}

// At evaluation, so it is in place before HubSpot's loader (included after this script) reads it.
settings()

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

const refreshAtOf = (identity: Identity): number =>
  identity.fetchedAt + Math.max(MIN_REFRESH_MS, (identity.expiry - identity.fetchedAt) * REFRESH_AT)

const isFresh = (identity: Identity | undefined): identity is Identity =>
  identity !== undefined && Date.now() < refreshAtOf(identity)

function isIdentity (value: unknown): value is Identity {
  const v = value as Identity | null
  return typeof v?.email === 'string' && typeof v.token === 'string' && typeof v.expiresAt === 'string' &&
    typeof v.expiry === 'number' && typeof v.fetchedAt === 'number'
}

function post (message: Message): void {
  try {
    channel?.postMessage(message)
  } catch {
    // A closed channel only costs other tabs a fetch of their own.
  }
}

function onMessage (message: Message): void {
  if (message.t === 'ask') {
    if (isFresh(current)) post({ t: 'token', identity: current })
  } else if (message.t === 'logout') {
    forget('logout')
  } else if (message.t === 'token' && isIdentity(message.identity)) {
    const offered = message.identity
    if (heard === undefined || offered.fetchedAt > heard.fetchedAt) heard = offered
    if (answerAsk !== undefined && isFresh(offered)) answerAsk(offered)
    // Another tab logged in, switched user or refreshed: it shares this tab's session, so follow it.
    else if (started && busy === 0 && offered.token !== current?.token && offered.fetchedAt > (current?.fetchedAt ?? 0)) {
      use(offered)
    }
  }
}

/** Once, on the first start(): its token URL names the channel and the lock. */
function openChannel (): void {
  if (lockName !== EVENT_PREFIX) return
  lockName = EVENT_PREFIX + new URL(options.tokenUrl ?? '/chat-token', location.href).href
  if (typeof BroadcastChannel === 'function') {
    channel = new BroadcastChannel(lockName)
    channel.onmessage = (event: MessageEvent<Message | null>) => {
      if (typeof event.data === 'object' && event.data !== null) void guard(() => onMessage(event.data as Message))
    }
  }
  document.addEventListener('visibilitychange', () => {
    // Timers stall in sleeping laptops and background tabs: catch up when the page is seen again.
    if (document.visibilityState === 'visible' && busy === 0 && current !== undefined && Date.now() >= refreshAtOf(current)) {
      void guard(() => refresh(generation))
    }
  })
}

function askOtherTabs (): Promise<Identity | undefined> {
  if (channel === undefined) return Promise.resolve(undefined)
  return new Promise(resolve => {
    const done = (identity: Identity | undefined): void => {
      answerAsk = undefined
      clearTimeout(timer)
      resolve(identity)
    }
    const timer = setTimeout(done, ASK_WAIT_MS)
    answerAsk = done
    post({ t: 'ask' })
  })
}

/** One tab at a time asks and fetches, so tabs opened together still make one request. */
function oneTabAtATime<T> (work: () => Promise<T>): Promise<T> {
  const locks = (navigator as { locks?: LockManager }).locks
  // Web Locks exist only in secure contexts; elsewhere tabs just may fetch twice.
  return locks === undefined ? work() : locks.request(lockName, work).then(result => result)
}

async function requestHeaders (): Promise<HeadersInit | undefined> {
  const headers = options.headers
  return typeof headers === 'function' ? await headers() : headers
}

async function call (method: 'GET' | 'DELETE'): Promise<Response> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS)
  try {
    return await fetch(options.tokenUrl ?? '/chat-token', {
      method,
      credentials: options.credentials ?? 'include',
      headers: await requestHeaders(),
      cache: 'no-store',
      // A logout followed at once by navigation must still reach the service.
      keepalive: method === 'DELETE',
      signal: abort.signal
    })
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

async function fetchToken (): Promise<Outcome> {
  for (let attempt = 1; ; attempt++) {
    let response: Response
    try {
      response = await call('GET')
    } catch {
      // Offline, timed out or refused by CORS: as transient as a 503.
      if (attempt < MAX_ATTEMPTS) {
        await pause(backoffMs(attempt))
        continue
      }
      return { reason: 'unavailable' }
    }
    const status = response.status
    if (response.ok) return parseAnswer(response)
    const refusal = refusals[status]
    if (refusal !== undefined) return { reason: refusal, status }
    if (status === 429 || status === 503) {
      const waitMs = retryAfterMs(response, attempt)
      if (attempt >= MAX_ATTEMPTS || waitMs > MAX_RETRY_WAIT_MS) return { reason: 'unavailable', status }
      await pause(waitMs)
      continue
    }
    emit('error', { message: 'unexpected answer from the token service', status })
    return { reason: 'error', status }
  }
}

async function parseAnswer (response: Response): Promise<Outcome> {
  const fetchedAt = Date.now()
  const body = await response.json().catch(() => null) as { email?: unknown; token?: unknown; expiresAt?: unknown } | null
  const { email, token, expiresAt } = body ?? {}
  // The client's clock may be hours off: measure the token's life on the service's clock when it says.
  const serverNow = Date.parse(response.headers.get('date') ?? '')
  const skew = Number.isNaN(serverNow) ? 0 : fetchedAt - serverNow
  const expiry = Date.parse(String(expiresAt)) + skew
  if (typeof email !== 'string' || email === '' || typeof token !== 'string' || token === '' ||
      typeof expiresAt !== 'string' || Number.isNaN(expiry)) {
    emit('error', { message: 'the token service answered without email, token and expiresAt', status: response.status })
    return { reason: 'error', status: response.status }
  }
  return { identity: { email, token, expiresAt, expiry: Math.min(expiry, fetchedAt + MAX_LIFETIME_MS), fetchedAt } }
}

/**
 * A token for this tab: one another tab already holds (first start only), else one fetched and then
 * announced, unless start() or logout() was called meanwhile.
 */
async function obtain (mode: 'first' | 'refresh' | 'new', gen: number): Promise<Outcome> {
  busy++
  try {
    return await oneTabAtATime(async () => {
      const since = mode === 'refresh' ? current?.fetchedAt ?? 0 : 0
      if (mode !== 'new' && isFresh(heard) && heard.fetchedAt > since) return { identity: heard }
      if (mode === 'first') {
        const shared = await askOtherTabs()
        if (shared !== undefined) return { identity: shared }
      }
      const outcome = await fetchToken()
      if ('identity' in outcome && gen === generation) post({ t: 'token', identity: outcome.identity })
      return outcome
    })
  } finally {
    busy--
  }
}

function use (identity: Identity): void {
  current = identity
  clearTimeout(refreshTimer)
  refreshTimer = setTimeout(() => { void guard(() => refresh(generation)) }, Math.max(0, refreshAtOf(identity) - Date.now()))
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
  const outcome = await obtain('refresh', gen)
  if (gen !== generation) return
  if ('identity' in outcome) return use(outcome.identity)
  const held = current
  // The session ended (logged out elsewhere, expired): the old identity must not stay on screen.
  if (outcome.reason !== 'unavailable' && outcome.reason !== 'error') return goAnonymous(outcome.reason, outcome.status)
  const left = held === undefined ? 0 : held.expiry - Date.now()
  if (held === undefined || left < 2 * MIN_REFRESH_MS) return goAnonymous(outcome.reason, outcome.status)
  // The held token is still good for a while: keep it and try again later.
  refreshTimer = setTimeout(() => { void guard(() => refresh(generation)) }, Math.min(5 * MIN_REFRESH_MS, left / 2))
}

/** Brings the widget in line with `current`; waits for HubSpot's SDK when it is not there yet. */
function syncWidget (): void {
  const sdk = page.HubSpotConversations
  if (sdk === undefined) {
    if (!syncQueued) {
      syncQueued = true
      const queue = page.hsConversationsOnReady ?? (page.hsConversationsOnReady = [])
      queue.push(() => {
        syncQueued = false
        void guard(syncWidget)
      })
    }
    return
  }
  const wanted = current
  const s = settings()
  if (wanted === undefined) {
    delete s.identificationEmail
    delete s.identificationToken
  } else {
    s.identificationEmail = wanted.email
    s.identificationToken = wanted.token
  }
  const token = wanted?.token ?? ''
  if (sdk.widget.status().loaded) {
    if (shownToken === token) return
    if (shownEmail !== '' && shownEmail !== wanted?.email) {
      // Another person now: drop the previous one's chat cookies and conversations with the widget.
      sdk.clear({ resetWidget: true })
      if (!sdk.widget.status().loaded) sdk.widget.load()
    } else {
      sdk.widget.remove()
      sdk.widget.load()
    }
  } else if (options.loadWidget !== false) {
    sdk.widget.load()
  } else {
    return
  }
  shownToken = token
  shownEmail = wanted?.email ?? ''
}

/** Local half of a logout: this tab's identity, settings and widget state go. */
function forget (reason: AnonymousReason): void {
  generation++
  current = undefined
  heard = undefined
  clearTimeout(refreshTimer)
  const sdk = page.HubSpotConversations
  const s = settings()
  delete s.identificationEmail
  delete s.identificationToken
  if (sdk !== undefined) {
    const wasLoaded = sdk.widget.status().loaded
    // Chat cookies and the widget instance go, so the next person does not see this one's conversations.
    sdk.clear({ resetWidget: true })
    shownToken = ''
    shownEmail = ''
    if (!sdk.widget.status().loaded && (wasLoaded || (started && options.loadWidget !== false))) sdk.widget.load()
  } else if (started) {
    syncWidget()
  }
  emit('anonymous', { reason })
}

/**
 * Identifies the visitor to the chat widget and loads it; resolves when that is done (identified or
 * anonymous), never rejects. Call it again after a login or user switch in a single-page app.
 */
export function start (startOptions: StartOptions = {}): Promise<void> {
  // Whatever fails, the visitor still gets a widget, anonymous.
  return guard(async () => {
    options = startOptions
    settings()
    const mode = started ? 'new' : 'first'
    started = true
    openChannel()
    const gen = ++generation
    clearTimeout(refreshTimer)
    const outcome = await obtain(mode, gen)
    if (gen !== generation) return
    if ('identity' in outcome) use(outcome.identity)
    else goAnonymous(outcome.reason, outcome.status)
  }, () => goAnonymous('error'))
}

/**
 * Forgets the visitor here and in the site's other tabs, resets the widget, and asks the service to
 * drop its cached token (DELETE, while the session cookie still exists: call this before ending the
 * session). Resolves when the service has answered; never rejects.
 */
export function logout (): Promise<void> {
  return guard(async () => {
    forget('logout')
    post({ t: 'logout' })
    try {
      const response = await call('DELETE')
      if (!response.ok && response.status !== 401) emit('error', { message: 'the token service refused the logout', status: response.status })
    } catch (error) {
      emit('error', { message: messageOf(error) })
    }
  })
}
