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
}

export interface LoadOptions {
  url: string
  connections: number
  durationS?: number
  amount?: number
  method?: 'GET' | 'POST' | 'DELETE'
  body?: string
  /** Headers for the n-th request; lets each request carry another session JWT. */
  headersFor?: (n: number) => Record<string, string>
}

export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  let n = 0
  const statusCounts: Record<string, number> = {}
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: options.url,
      connections: options.connections,
      ...(options.amount === undefined ? { duration: options.durationS ?? 5 } : { amount: options.amount }),
      method: options.method ?? 'GET',
      ...(options.body === undefined ? {} : { body: options.body, headers: { 'content-type': 'application/json' } }),
      requests: [{
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
    statusCounts
  }
}
