import autocannon from 'autocannon'

/** One autocannon run with rotating request headers, reduced to the numbers the report needs. */

export interface LoadResult {
  requests: number
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
  statusCounts: Record<string, number>
  /** CPU the load generator (this process) used per second of the run: near 1 means it was the limit. */
  loadCpuShare: number
}

export interface LoadOptions {
  /**
   * One target, or several (replicas): autocannon gives connection i the URL i mod their count, so the
   * connections are spread evenly and one histogram covers them all.
   */
  url: string | string[]
  connections: number
  durationS?: number
  amount?: number
  method?: 'GET' | 'POST' | 'DELETE'
  body?: string
  /**
   * Headers for the n-th request across all connections: every request can carry a new session JWT
   * (misses). autocannon rebuilds each such request, which costs the load generator ~100 µs.
   */
  headersFor?: (n: number) => Record<string, string>
  /**
   * A fixed list of header sets that each connection cycles through (hits). autocannon builds these
   * requests once, so the load generator stays cheap and the server, not the generator, is measured.
   */
  rotate?: Array<Record<string, string>>
}

export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  let n = 0
  const cpuBefore = process.cpuUsage()
  const startedAt = performance.now()
  const statusCounts: Record<string, number> = {}
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      // autocannon takes a list of URLs at run time; its type declarations name only a string.
      url: options.url as string,
      connections: options.connections,
      ...(options.amount === undefined ? { duration: options.durationS ?? 5 } : { amount: options.amount }),
      method: options.method ?? 'GET',
      ...(options.body === undefined ? {} : { body: options.body, headers: { 'content-type': 'application/json' } }),
      requests: options.rotate !== undefined
        ? options.rotate.map(headers => ({ headers }))
        : [{
            setupRequest: request => {
              const extra = options.headersFor?.(n++)
              return extra === undefined ? request : { ...request, headers: { ...request.headers, ...extra } }
            }
          }]
    }, (error, finished) => { if (error === null || error === undefined) resolve(finished); else reject(error) })
    instance.on('response', (_client: unknown, statusCode: number) => {
      statusCounts[statusCode] = (statusCounts[statusCode] ?? 0) + 1
    })
  })
  return {
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    statusCounts,
    loadCpuShare: cpuShareSince(cpuBefore, startedAt)
  }
}

function cpuShareSince (before: NodeJS.CpuUsage, startedAt: number): number {
  const used = process.cpuUsage(before)
  return (used.user + used.system) / 1000 / Math.max(1, performance.now() - startedAt)
}
