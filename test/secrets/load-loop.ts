import type { HttpAnswer } from '../helper.js'

/**
 * A steady loop of requests from a few concurrent workers, each sending its next request as soon as
 * the last one is answered, counting every answer, so a test can change something under load and
 * count what it cost.
 */
export interface LoadLoop {
  /** Requests answered so far. */
  answered: () => number
  /** Every answer that was not 200: status and body. */
  failures: string[]
  /** Resolves once every request that had started by now has been answered. */
  drained: () => Promise<void>
  stop: () => Promise<void>
}

export function startLoad (workers: number, send: (n: number) => Promise<HttpAnswer>): LoadLoop {
  let running = true
  let sent = 0
  let answered = 0
  const failures: string[] = []
  const pending = new Map<number, Promise<unknown>>()
  async function worker (): Promise<void> {
    while (running) {
      const n = sent++
      const answer = send(n)
      pending.set(n, answer)
      try {
        const { status, text } = await answer
        if (status !== 200) failures.push(`${status} ${text}`)
      } catch (error) {
        failures.push(`no answer: ${(error as Error).message}`)
      } finally {
        pending.delete(n)
        answered++
      }
    }
  }
  const all = Promise.all(Array.from({ length: workers }, worker))
  return {
    answered: () => answered,
    failures,
    drained: async () => { await Promise.allSettled([...pending.values()]) },
    stop: async () => {
      running = false
      await all
    }
  }
}
