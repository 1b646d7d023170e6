/**
 * What a PromQL expression (or a Grafana `label_values(...)` query) names: metrics, label matchers and
 * grouping labels. A loose reading, not a parser: enough to hold our alerts and dashboard to the
 * series the service really exposes.
 */

export type MatchOperator = '=' | '!=' | '=~' | '!~'

export interface LabelMatcher {
  label: string
  op: MatchOperator
  value: string
}

export interface SelectorReference {
  metric: string
  matchers: LabelMatcher[]
}

export interface ExpressionReferences {
  selectors: SelectorReference[]
  /** Labels in by / without / on / ignoring / group_left / group_right clauses, and label_values' label. */
  groupingLabels: string[]
  usesHistogramQuantile: boolean
}

const IDENTIFIER = /[A-Za-z_:][A-Za-z0-9_:]*/y
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan'])
const SELECTOR_WITH_MATCHERS = /([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}/g
const MATCHER = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g
const GROUPING = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g
const LABEL_VALUES = /^\s*label_values\(\s*(.*?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/s
/** A placeholder for a selector already read, so its name is not read twice. */
const READ = '\u0001'

function matchersIn (body: string): LabelMatcher[] {
  return [...body.matchAll(MATCHER)].map(([, label, op, value]) => ({
    label: label!,
    op: op as MatchOperator,
    value: value!.replace(/\\(.)/g, '$1')
  }))
}

export function referencesIn (query: string): ExpressionReferences {
  const labelValues = LABEL_VALUES.exec(query)
  if (labelValues !== null) {
    const inner = referencesIn(labelValues[1]!)
    return { ...inner, groupingLabels: [...inner.groupingLabels, labelValues[2]!] }
  }

  const selectors: SelectorReference[] = []
  let rest = query.replace(SELECTOR_WITH_MATCHERS, (_whole, name: string | undefined, body: string) => {
    const matchers = matchersIn(body)
    const byName = matchers.find(matcher => matcher.label === '__name__' && matcher.op === '=')
    const metric = name ?? byName?.value
    if (metric === undefined) throw new Error(`a selector without a metric name in: ${query}`)
    selectors.push({ metric, matchers: matchers.filter(matcher => matcher.label !== '__name__') })
    return ` ${READ} `
  })

  const groupingLabels: string[] = []
  rest = rest
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries: [5m], [$__rate_interval], [1h:1m]
    .replace(GROUPING, (_whole, labels: string) => {
      groupingLabels.push(...labels.split(',').map(label => label.trim()).filter(label => label !== ''))
      return ' '
    })
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ') // string arguments (label_replace and the like)
    .replace(/\boffset\s+-?[0-9a-z]+/gi, ' ')
    .replace(/(?<![A-Za-z0-9_:])[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?/g, ' ')

  // Bare metric names: every identifier left that is neither a keyword nor a function being called.
  for (let index = 0; index < rest.length;) {
    IDENTIFIER.lastIndex = index
    const found = IDENTIFIER.exec(rest)
    if (found === null) {
      index++
      continue
    }
    index = IDENTIFIER.lastIndex
    const name = found[0]
    const calls = /^\s*\(/.test(rest.slice(index))
    if (!calls && !KEYWORDS.has(name.toLowerCase())) selectors.push({ metric: name, matchers: [] })
  }

  return { selectors, groupingLabels, usesHistogramQuantile: /\bhistogram_quantile\s*\(/.test(query) }
}
