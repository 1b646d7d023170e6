/** Medians with their spread, the way every row of the report is given. */
export interface Spread {
  median: number
  min: number
  max: number
}

export function spread (values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! }
}

export interface Row {
  scenario: string
  rps?: Spread
  p50Ms?: Spread
  p99Ms?: Spread
  cpuUsPerRequest?: Spread
  /** The Redis scenarios: CPU the bench's redis-server used per request, apart from the replicas'. */
  redisCpuUsPerRequest?: Spread
  rssMb?: Spread
  /** Share of its core the load generator used: near 100 % means the generator, not the server, was the limit. */
  loadCpuPercent?: Spread
  ratioToBaseline?: number
  notes: string
}

export interface Target {
  name: string
  limit: string
  measured: string
  met: boolean
}
