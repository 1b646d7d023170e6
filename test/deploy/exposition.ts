import { type LabelMatcher, referencesIn } from './promql-references.js'

/** Prometheus text exposition, read back: each sample name with its labels and the values they take. */
export interface Exposition {
  /** Sample name (`x_bucket`, `x_count`, ...) → label → values seen. */
  samples: Map<string, Map<string, Set<string>>>
  /** Family name → its `# TYPE` (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>
}

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+/
const LABEL_PAIR = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export function parseExposition (text: string): Exposition {
  const samples: Exposition['samples'] = new Map()
  const types: Exposition['types'] = new Map()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line)
    if (type !== null) types.set(type[1]!, type[2]!)
    const sample = SAMPLE.exec(line)
    if (line.startsWith('#') || sample === null) continue
    const labels = samples.get(sample[1]!) ?? new Map<string, Set<string>>()
    samples.set(sample[1]!, labels)
    for (const [, label, value] of (sample[2] ?? '').matchAll(LABEL_PAIR)) {
      const values = labels.get(label!) ?? new Set<string>()
      values.add(value!.replace(/\\(.)/g, '$1'))
      labels.set(label!, values)
    }
  }
  return { samples, types }
}

/** Labels Prometheus adds to every scraped series; the service never exposes them itself. */
export const TARGET_LABELS = new Set(['job', 'instance'])

/** A recording rule's name, with the labels its output keeps (its `by (...)` labels). */
export type RecordedSeries = Map<string, Set<string>>

const SUFFIXES = ['_bucket', '_sum', '_count'] as const

function familyProblem (metric: string, exposition: Exposition): string | undefined {
  const type = exposition.types.get(metric)
  if (type === 'histogram' || type === 'summary') return `${metric} is a ${type}: query ${metric}_bucket, _sum or _count`
  const suffix = SUFFIXES.find(ending => metric.endsWith(ending))
  if (suffix !== undefined) {
    const family = metric.slice(0, -suffix.length)
    const familyType = exposition.types.get(family)
    if (familyType !== undefined && familyType !== 'histogram' && familyType !== 'summary') return `${family} is a ${familyType}, it has no ${suffix}`
  }
  return undefined
}

/** Whether a matcher's value names something the service shows: a typo would match nothing, or exclude nothing. */
function valueProblem (metric: string, matcher: LabelMatcher, exposed: Set<string>): string | undefined {
  // Template variables ($job, $instance) are chosen in Grafana, from what is there.
  if (matcher.value.includes('$')) return undefined
  const known = [...exposed].sort().join(', ')
  if (matcher.op === '=' || matcher.op === '!=') {
    return exposed.has(matcher.value) ? undefined : `${metric}{${matcher.label}${matcher.op}"${matcher.value}"}: no such value (exposed: ${known})`
  }
  const pattern = new RegExp(`^(?:${matcher.value})$`)
  return [...exposed].some(value => pattern.test(value)) ? undefined : `${metric}{${matcher.label}${matcher.op}"${matcher.value}"}: matches no exposed value (exposed: ${known})`
}

/**
 * Every problem with one query against a scrape of the service: metrics it does not expose, labels
 * those metrics do not carry, matcher values it never shows, grouping labels no metric in the query
 * has, and histogram quantiles that do not keep `le`. Empty when the query only names what is there.
 */
export function unexposedReferences (query: string, exposition: Exposition, recorded: RecordedSeries = new Map()): string[] {
  const problems: string[] = []
  const references = referencesIn(query)
  const labelsInQuery = new Set(TARGET_LABELS)

  for (const { metric, matchers } of references.selectors) {
    const recordedLabels = recorded.get(metric)
    if (recordedLabels !== undefined) {
      for (const label of recordedLabels) labelsInQuery.add(label)
      for (const { label } of matchers) {
        if (!TARGET_LABELS.has(label) && !recordedLabels.has(label)) problems.push(`${metric} (recorded) keeps no label ${label}`)
      }
      continue
    }
    if (metric.includes(':')) {
      problems.push(`${metric} looks like a recording rule, but no rule records it`)
      continue
    }
    const labels = exposition.samples.get(metric)
    if (labels === undefined) {
      problems.push(familyProblem(metric, exposition) ?? `${metric} is not exposed by the service`)
      continue
    }
    for (const label of labels.keys()) labelsInQuery.add(label)
    for (const matcher of matchers) {
      if (TARGET_LABELS.has(matcher.label)) continue
      const values = labels.get(matcher.label)
      if (values === undefined) {
        problems.push(`${metric} has no label ${matcher.label} (it has: ${[...labels.keys()].join(', ') || 'none'})`)
        continue
      }
      const problem = valueProblem(metric, matcher, values)
      if (problem !== undefined) problems.push(problem)
    }
  }

  for (const label of references.groupingLabels) {
    if (!labelsInQuery.has(label)) problems.push(`groups by ${label}, which no metric in the query has: ${query}`)
  }
  if (references.usesHistogramQuantile && !references.groupingLabels.includes('le')) {
    problems.push(`histogram_quantile without le in its grouping: ${query}`)
  }
  return problems
}
