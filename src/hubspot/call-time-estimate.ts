/**
 * How much of a request's deadline one HubSpot call needs. A call sent with less than that would time
 * out on the request's own deadline while HubSpot is healthy, and cost a budget slot for nothing; so
 * no call is sent (nor a budget slot waited for) with less left.
 *
 * The need is 1.5 × the slowest of the last 16 calls (answered or not: a call cut off by its deadline
 * still says HubSpot took at least that long), at least `floorMs` (what is needed before anything is
 * known) and at most `capMs`, so that calls always go while HubSpot is merely slow and the estimate
 * keeps learning.
 */
const SAMPLES = 16
const HEADROOM_FACTOR = 1.5

export interface CallTimeEstimateOptions {
  floorMs: number
  capMs: number
}

export class CallTimeEstimate {
  readonly #floorMs: number
  readonly #capMs: number
  readonly #samples: number[] = []
  #next = 0

  constructor (options: CallTimeEstimateOptions) {
    this.#floorMs = options.floorMs
    this.#capMs = Math.max(options.floorMs, options.capMs)
  }

  record (durationMs: number): void {
    if (this.#samples.length < SAMPLES) this.#samples.push(durationMs)
    else this.#samples[this.#next] = durationMs
    this.#next = (this.#next + 1) % SAMPLES
  }

  /** Milliseconds of deadline a call needs to be sent. */
  needMs (): number {
    let slowest = 0
    for (const sample of this.#samples) slowest = Math.max(slowest, sample)
    return Math.min(this.#capMs, Math.max(this.#floorMs, slowest * HEADROOM_FACTOR))
  }
}
