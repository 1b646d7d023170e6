import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import type { Row, Spread, Target } from './stats.js'

/** The results table, printed and written to bench/results/latest.{md,json}. */

const fmt = (value: Spread | undefined, digits = 0): string =>
  value === undefined ? '' : `${value.median.toFixed(digits)} (${value.min.toFixed(digits)}–${value.max.toFixed(digits)})`

/** `name` is `latest` for a full run; smoke and partial runs write their own files, never the committed results. */
export function writeReport (rows: Row[], targets: Target[], settings: object, name: 'latest' | 'smoke' | 'partial'): string {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }
  const fastify = JSON.parse(readFileSync('node_modules/fastify/package.json', 'utf8')) as { version: string }
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`
  const header = [
    '# chat-token benchmark',
    '',
    `- date: ${new Date().toISOString()}`,
    `- machine: ${machine}`,
    `- versions: chat-token ${pkg.version}, Node ${process.version}, fastify ${fastify.version}`,
    `- settings: ${JSON.stringify(settings)}`,
    '- medians of the runs, with min–max; server and load generator pinned to different cores where taskset exists',
    ''
  ]
  const table = [
    '| scenario | req/s | p50 ms | p99 ms | server CPU µs/req | Redis CPU µs/req | RSS MB | load gen CPU % | × baseline | notes |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(row => `| ${row.scenario} | ${fmt(row.rps)} | ${fmt(row.p50Ms, 1)} | ${fmt(row.p99Ms, 1)} | ${fmt(row.cpuUsPerRequest)} | ${fmt(row.redisCpuUsPerRequest)} | ${fmt(row.rssMb)} | ${fmt(row.loadCpuPercent)} | ${row.ratioToBaseline === undefined ? '' : row.ratioToBaseline.toFixed(2)} | ${row.notes} |`)
  ]
  const goals = [
    '',
    '| target | limit | measured | met |',
    '|---|---|---|---|',
    ...targets.map(target => `| ${target.name} | ${target.limit} | ${target.measured} | ${target.met ? 'yes' : '**no**'} |`)
  ]
  const markdown = [...header, ...table, ...goals, ''].join('\n')
  mkdirSync('bench/results', { recursive: true })
  writeFileSync(`bench/results/${name}.md`, markdown)
  writeFileSync(`bench/results/${name}.json`, JSON.stringify({ date: new Date().toISOString(), machine, node: process.version, settings, rows, targets }, null, 2) + '\n')
  return markdown
}
