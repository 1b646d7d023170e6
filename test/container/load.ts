import { Client } from 'undici'

/**
 * Steady load from many simulated browsers: each session has its own keep-alive connection and asks
 * GET /chat-token every `intervalMs` (with jitter), as a page does when tabs open and tokens refresh.
 * Every request is recorded under the phase that was current when it was sent; a request that gets no
 * answer at all (connection error, timeout) is recorded as never answered.
 */

export interface Outcome {
  phase: string
  /** Undefined when no answer came. */
  status?: number
  /** The problem's `code`, or `html` for an answer of the load balancer itself. */
  code?: string
  retryAfter?: string
  servedBy?: string
  error?: string
  ms: number
}

export interface LoadOptions {
  origin: string
  path: string
  /** One entry per simulated browser: its request headers. */
  sessions: Array<Record<string, string>>
  intervalMs: number
  /** Upper bound of the whole run, whatever the caller does. */
  maxDurationMs: number
  answerTimeoutMs: number
}

export class BrowserLoad {
  readonly outcomes: Outcome[] = []
  phase = 'steady'
  private running = false
  private loops: Array<Promise<void>> = []
  private readonly clients: Client[] = []

  constructor (private readonly options: LoadOptions) {}

  /** One request per session, `concurrency` at a time; resolves with their outcomes. */
  async once (phase: string, concurrency: number): Promise<Outcome[]> {
    this.phase = phase
    this.ensureClients()
    const outcomes: Outcome[] = []
    for (let first = 0; first < this.options.sessions.length; first += concurrency) {
      const batch = this.options.sessions.slice(first, first + concurrency)
      outcomes.push(...await Promise.all(batch.map((headers, index) => this.send(this.clients[first + index]!, headers))))
    }
    return outcomes
  }

  start (phase: string): void {
    this.phase = phase
    this.ensureClients()
    this.running = true
    const stopAt = Date.now() + this.options.maxDurationMs
    this.loops = this.options.sessions.map(async (headers, index) => {
      // Spread the sessions over one interval so the load is steady rather than in waves.
      await sleep(Math.random() * this.options.intervalMs)
      while (this.running && Date.now() < stopAt) {
        await this.send(this.clients[index]!, headers)
        await sleep(this.options.intervalMs * (0.75 + Math.random() / 2))
      }
    })
  }

  /** Stops the loops, waits for the requests in flight, closes the connections. */
  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
    await Promise.all(this.clients.map(client => client.close().catch(() => {})))
  }

  /** The outcomes of some phases, counted: sent, 200, problems by status (and code), never answered. */
  count (phases: string[]): { sent: number; ok: number; problems: Record<string, number>; neverAnswered: number; errors: Record<string, number>; servedBy: Record<string, number> } {
    const chosen = this.outcomes.filter(outcome => phases.includes(outcome.phase))
    const problems: Record<string, number> = {}
    const errors: Record<string, number> = {}
    const servedBy: Record<string, number> = {}
    for (const outcome of chosen) {
      if (outcome.status === undefined) {
        errors[outcome.error ?? 'error'] = (errors[outcome.error ?? 'error'] ?? 0) + 1
      } else if (outcome.status !== 200) {
        const key = `${outcome.status} ${outcome.code ?? ''}${outcome.retryAfter === undefined ? '' : ' (Retry-After)'}`.trim()
        problems[key] = (problems[key] ?? 0) + 1
      }
      if (outcome.servedBy !== undefined) servedBy[outcome.servedBy] = (servedBy[outcome.servedBy] ?? 0) + 1
    }
    return {
      sent: chosen.length,
      ok: chosen.filter(outcome => outcome.status === 200).length,
      problems,
      neverAnswered: chosen.filter(outcome => outcome.status === undefined).length,
      errors,
      servedBy
    }
  }

  private ensureClients (): void {
    while (this.clients.length < this.options.sessions.length) {
      this.clients.push(new Client(this.options.origin, { pipelining: 1, keepAliveTimeout: 30_000 }))
    }
  }

  private async send (client: Client, headers: Record<string, string>): Promise<Outcome> {
    const phase = this.phase
    const startedAt = Date.now()
    let outcome: Outcome
    try {
      const answer = await client.request({
        method: 'GET',
        path: this.options.path,
        headers,
        headersTimeout: this.options.answerTimeoutMs,
        bodyTimeout: this.options.answerTimeoutMs
      })
      const text = await answer.body.text()
      const type = String(answer.headers['content-type'] ?? '')
      let code: string | undefined
      if (answer.statusCode !== 200) {
        code = type.startsWith('application/problem+json') ? (JSON.parse(text) as { code?: string }).code : type.startsWith('text/html') ? 'html' : type
      }
      outcome = {
        phase,
        status: answer.statusCode,
        ...(code === undefined ? {} : { code }),
        ...(answer.headers['retry-after'] === undefined ? {} : { retryAfter: String(answer.headers['retry-after']) }),
        ...(answer.headers['x-served-by'] === undefined ? {} : { servedBy: String(answer.headers['x-served-by']) }),
        ms: Date.now() - startedAt
      }
    } catch (error) {
      const code = (error as { code?: string }).code
      outcome = { phase, error: code ?? (error instanceof Error ? error.message : String(error)), ms: Date.now() - startedAt }
    }
    this.outcomes.push(outcome)
    return outcome
  }
}

function sleep (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
