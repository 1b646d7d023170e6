import type { ReceivedSpan } from './otlp-receiver.js'

/** Reading exported spans as trees: one trace's spans, a span's children, an indented outline. */

export function spansOfTrace (spans: ReceivedSpan[], traceId: string): ReceivedSpan[] {
  return spans.filter(span => span.traceId === traceId).sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0))
}

export function childrenOf (spans: ReceivedSpan[], parent: ReceivedSpan): ReceivedSpan[] {
  return spans.filter(span => span.traceId === parent.traceId && span.parentSpanId === parent.spanId)
}

/** Every span under `root`, at any depth. */
export function descendantsOf (spans: ReceivedSpan[], root: ReceivedSpan): ReceivedSpan[] {
  const found: ReceivedSpan[] = []
  for (const child of childrenOf(spans, root)) found.push(child, ...descendantsOf(spans, child))
  return found
}

/** `name [key=value …]`, indented by depth: for test output, so a failure shows the tree it saw. */
export function outline (spans: ReceivedSpan[], root: ReceivedSpan, show: string[] = [], depth = 0): string {
  const shown = show.filter(key => root.attributes[key] !== undefined).map(key => `${key}=${String(root.attributes[key])}`)
  const status = root.status.code === 2 ? ' ERROR' : ''
  const line = `${'  '.repeat(depth)}${root.name}${status}${shown.length > 0 ? ` [${shown.join(' ')}]` : ''}`
  return [line, ...childrenOf(spans, root).map(child => outline(spans, child, show, depth + 1))].join('\n')
}
