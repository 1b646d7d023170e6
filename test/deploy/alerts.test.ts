import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { parse } from 'yaml'
import { startMetricsListener } from '../../src/metrics/listener.js'
import { createServiceMetrics } from '../../src/metrics/service-metrics.js'
import { baseEnv, bearer, type RunningService, signSession, startEmulator, startService, until } from '../helper.js'
import { SHARED_REDIS_URL, redisScope, redisSkipReason } from '../redis-helper.js'
import { type Exposition, parseExposition, type RecordedSeries, unexposedReferences } from './exposition.js'
import { referencesIn } from './promql-references.js'

/**
 * deploy/prometheus/alerts.yml, deploy/grafana/chat-token.json and docs/runbook.md against promtool,
 * each other and a scrape of the running service.
 */

const root = fileURLToPath(new URL('../../', import.meta.url))
const RULES = 'deploy/prometheus/alerts.yml'
const RULE_TESTS = 'deploy/prometheus/alerts.test.yml'
const DASHBOARD = 'deploy/grafana/chat-token.json'
const RUNBOOK = 'docs/runbook.md'

interface Rule {
  alert?: string
  record?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

const readText = (path: string): Promise<string> => readFile(root + path, 'utf8')
const rules = ((parse(await readText(RULES)) as { groups: Array<{ rules: Rule[] }> }).groups).flatMap(group => group.rules)
const alerts = rules.filter(rule => rule.alert !== undefined)

interface Panel { title?: string; panels?: Panel[]; targets?: Array<{ expr?: string }> }
interface Dashboard { panels: Panel[]; templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> } }
const dashboard = JSON.parse(await readText(DASHBOARD)) as Dashboard

/** Every query in the dashboard, named by where it is. */
function dashboardQueries (): Array<{ where: string; query: string }> {
  const queries: Array<{ where: string; query: string }> = []
  const walk = (panels: Panel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.expr !== undefined) queries.push({ where: `panel "${panel.title}"`, query: target.expr })
      }
      walk(panel.panels ?? [])
    }
  }
  walk(dashboard.panels)
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query' || variable.query === undefined) continue
    queries.push({ where: `variable $${variable.name}`, query: typeof variable.query === 'string' ? variable.query : variable.query.query })
  }
  return queries
}

/** What each recording rule records, with the labels it keeps (its grouping, and those of recorded series it uses). */
function recordedSeries (): RecordedSeries {
  const recorded: RecordedSeries = new Map()
  for (const rule of rules) {
    if (rule.record === undefined) continue
    const references = referencesIn(rule.expr)
    const labels = new Set(references.groupingLabels)
    for (const { metric } of references.selectors) for (const label of recorded.get(metric) ?? []) labels.add(label)
    recorded.set(rule.record, labels)
  }
  return recorded
}

/** The anchor GitHub gives a markdown heading. */
function headingAnchor (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-')
}

const execFileAsync = promisify(execFile)
/** Debian's prometheus package ships it; PROMTOOL names another binary. */
const PROMTOOL = process.env.PROMTOOL ?? 'promtool'

async function promtool (...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(PROMTOOL, args, { cwd: root })
    return { code: 0, output: stdout + stderr }
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string }
    if (failed.code === 'ENOENT') throw error
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` }
  }
}

const ci = process.env.CI !== undefined && process.env.CI !== ''
const promtoolMissing = await execFileAsync(PROMTOOL, ['--version']).then(() => false, () => true)

t.test('promtool accepts the rules and their unit tests pass', {
  skip: promtoolMissing && !ci ? `${PROMTOOL} is not installed (Debian: apt-get install prometheus): the alert rules are not checked` : false
}, async t => {
  if (promtoolMissing) {
    t.fail(`${PROMTOOL} is not installed, and CI is set: the alert rules must be checked there (.ci/run installs Debian's prometheus)`)
    return
  }
  const check = await promtool('check', 'rules', RULES)
  t.equal(check.code, 0, `promtool check rules:\n${check.output}`)
  t.match(check.output, /SUCCESS: \d+ rules found/)
  const tests = await promtool('test', 'rules', RULE_TESTS)
  t.equal(tests.code, 0, `promtool test rules:\n${tests.output}`)
  t.match(tests.output, /SUCCESS/)
})

t.test('the rule tests cover every alert, firing and not firing', async t => {
  const ruleTests = parse(await readText(RULE_TESTS)) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }> }
  const cases = ruleTests.tests.flatMap(test => test.alert_rule_test ?? [])
  for (const { alert } of alerts) {
    t.ok(cases.some(c => c.alertname === alert && c.exp_alerts.length > 0), `${alert} is tested firing`)
    t.ok(cases.some(c => c.alertname === alert && c.exp_alerts.length === 0), `${alert} is tested not firing`)
  }
})

t.test('every alert has a severity, a summary, a description and its own runbook section', async t => {
  const runbook = await readText(RUNBOOK)
  const sections = new Set([...runbook.matchAll(/^## (.+)$/gm)].map(([, heading]) => headingAnchor(heading!)))
  t.ok(alerts.length >= 10, `${alerts.length} alerts`)
  const anchors = new Set<string>()
  for (const alert of alerts) {
    const name = alert.alert!
    t.match(alert.labels?.severity, /^(critical|warning|info)$/, `${name}: severity`)
    t.ok((alert.annotations?.summary ?? '').length > 10, `${name}: summary`)
    t.ok((alert.annotations?.description ?? '').length > 30, `${name}: description`)
    const url = alert.annotations?.runbook_url ?? ''
    const [path, anchor = ''] = url.split('#')
    t.equal(path, RUNBOOK, `${name}: runbook_url points at ${RUNBOOK}`)
    t.ok(sections.has(anchor), `${name}: ${RUNBOOK} has a heading for #${anchor}`)
    t.equal(anchor, headingAnchor(name), `${name}: its section is named after it`)
    anchors.add(anchor)
  }
  const alertSections = [...sections].filter(section => section.startsWith('chattoken'))
  t.same(alertSections.filter(section => !anchors.has(section)), [], 'no runbook section for an alert that does not exist')
})

t.test('the dashboard reads one data source variable and names a metric in every query', async t => {
  const queries = dashboardQueries()
  t.ok(queries.length >= 20, `${queries.length} queries`)
  for (const { where, query } of queries) {
    t.ok(referencesIn(query).selectors.length > 0, `${where} names a metric: ${query}`)
    if (!where.startsWith('variable')) t.match(query, /instance=~"\$instance"|job=~"\$job"/, `${where} follows the job and instance pickers`)
  }
  const walk = (panels: Panel[]): Panel[] => panels.flatMap(panel => [panel, ...walk(panel.panels ?? [])])
  const sources = new Set(walk(dashboard.panels).filter(panel => panel.targets !== undefined).map(panel => JSON.stringify((panel as { datasource?: unknown }).datasource)))
  t.same([...sources], [JSON.stringify({ type: 'prometheus', uid: '${datasource}' })])
})

/**
 * Room for a loaded test machine: this test is about names, not timing, so a slow answer must not turn
 * into a 504 or a 503 overloaded that leaves a series unseen.
 */
const patient = { HUBSPOT_TIMEOUT_MS: '30000', MAX_EVENT_LOOP_DELAY_MS: '0' }

async function scrapeRunningService (t: Test): Promise<Exposition> {
  const emulator = await startEmulator(t)
  const metrics = createServiceMetrics({ redisConfigured: true })
  const listener = await startMetricsListener(metrics.registry, { port: 0, host: '127.0.0.1' })
  t.teardown(() => listener.close())
  const ask = async (service: RunningService, email: string, status: number, what: string): Promise<void> => {
    const answer = await service.get('/chat-token', bearer(signSession({ sub: email, email })))
    t.equal(answer.status, status, `${what}: ${answer.status} ${answer.text}`)
  }

  // A miss then a hit, through Redis as in production.
  const scope = redisScope(t)
  const shared = await startService(t, baseEnv(emulator, { ...patient, REDIS_URL: SHARED_REDIS_URL }), { metrics, redisKeyPrefix: scope.prefix })
  await ask(shared, 'ada@example.com', 200, 'a miss')
  await ask(shared, 'ada@example.com', 200, 'a hit')
  // Failures, each on a replica of its own so that one's breaker or pause does not hide the next: HubSpot
  // answers 429, then 401 (credentials refused).
  const failing = await startService(t, baseEnv(emulator, { ...patient, HUBSPOT_MAX_RETRIES: '0' }), { metrics })
  emulator.setFaults({ sequence: [{ kind: 'status', status: 429 }] })
  await ask(failing, 'grace@example.com', 503, 'HubSpot 429')
  const refused = await startService(t, baseEnv(emulator, { ...patient, HUBSPOT_MAX_RETRIES: '0' }), { metrics })
  emulator.setFaults({ sequence: [{ kind: 'status', status: 401 }] })
  await ask(refused, 'alan@example.com', 502, 'HubSpot 401')

  let text = ''
  await until('the last answer shows on the metrics port', async () => {
    const answer = await request(`${listener.url}/metrics`)
    text = await answer.body.text()
    return /route="\/chat-token",status="502"/.test(text)
  }, 30_000)
  return parseExposition(text)
}

const redisSkip = await redisSkipReason()

t.test('every metric and label in the alerts and the dashboard is one the running service exposes', { skip: redisSkip }, async t => {
  const exposition = await scrapeRunningService(t)
  const recorded = recordedSeries()
  const queries = [
    ...rules.map(rule => ({ where: rule.alert ?? rule.record!, query: rule.expr })),
    ...dashboardQueries()
  ]
  let metricsNamed = 0
  for (const { where, query } of queries) {
    metricsNamed += referencesIn(query).selectors.length
    t.same(unexposedReferences(query, exposition, recorded), [], `${where}: ${query.replace(/\s+/g, ' ').trim()}`)
  }
  t.ok(metricsNamed >= 50, `${metricsNamed} metric references checked`)
})

t.test('the exposure check catches a misspelt metric, label, value or histogram', { skip: redisSkip }, async t => {
  const exposition = parseExposition([
    '# TYPE chat_token_hubspot_requests_total counter',
    'chat_token_hubspot_requests_total{outcome="ok",status="200"} 1',
    '# TYPE chat_token_hubspot_budget_wait_seconds histogram',
    'chat_token_hubspot_budget_wait_seconds_bucket{le="+Inf"} 1',
    'chat_token_hubspot_budget_wait_seconds_count 1',
    '# TYPE chat_token_redis_up gauge',
    'chat_token_redis_up 1'
  ].join('\n'))
  const problems = (query: string): string[] => unexposedReferences(query, exposition, new Map([['chat_token:calls', new Set(['job'])]]))

  t.same(problems('sum by (job, outcome) (rate(chat_token_hubspot_requests_total{outcome="ok", status=~"2.."}[5m]))'), [])
  t.same(problems('histogram_quantile(0.99, sum by (le) (rate(chat_token_hubspot_budget_wait_seconds_bucket[5m]))) > 0.5'), [])
  t.same(problems('chat_token_redis_up == 0 and on (instance) chat_token:calls{job="x"} > 0'), [])
  t.match(problems('rate(chat_token_hubspot_request_total[5m])'), [/chat_token_hubspot_request_total is not exposed/])
  t.match(problems('chat_token_hubspot_requests_total{outcom="ok"}'), [/has no label outcom/])
  t.match(problems('chat_token_hubspot_requests_total{outcome="rate_limitted"}'), [/no such value/])
  t.match(problems('chat_token_hubspot_requests_total{outcome!="okay"}'), [/no such value/])
  t.match(problems('chat_token_hubspot_requests_total{status=~"5.."}'), [/matches no exposed value/])
  t.match(problems('sum by (reason) (chat_token_redis_up)'), [/groups by reason/])
  t.match(problems('histogram_quantile(0.9, rate(chat_token_hubspot_budget_wait_seconds[5m]))'), [/is a histogram: query/, /without le/])
  t.match(problems('chat_token_redis_up_count'), [/chat_token_redis_up is a gauge, it has no _count/])
  t.match(problems('chat_token:call_count'), [/no rule records it/])
  t.match(problems('chat_token:calls{outcome="ok"}'), [/keeps no label outcome/])
  t.same(problems('label_values(chat_token_redis_up, instance)'), [])
  t.match(problems('label_values(chat_token_redis_up, reason)'), [/groups by reason/])
})
