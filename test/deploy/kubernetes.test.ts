import { generateKeyPairSync } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { ConfigError, loadConfig } from '../../src/config/load-config.js'

/**
 * deploy/kubernetes, offline: every manifest parsed and validated against the Kubernetes API schemas
 * (kubernetes-models), then the settings that matter checked one by one, and the ConfigMap loaded by
 * the service's own loadConfig.
 */

const dir = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url))

interface Validatable { validate: () => void }
type Model = new (data: never) => Validatable
const models: Record<string, Model> = {
  'v1/Namespace': Namespace as unknown as Model,
  'v1/ConfigMap': ConfigMap as unknown as Model,
  'v1/Secret': Secret as unknown as Model,
  'v1/Service': Service as unknown as Model,
  'apps/v1/Deployment': Deployment as unknown as Model,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as Model,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler as unknown as Model,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as Model
}

// Plain data read from YAML: walked with loose types, asserted with tap.
type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const files = readdirSync(dir).filter(name => name.endsWith('.yaml')).sort()
const manifests = files.filter(name => name !== 'kustomization.yaml')
const docs: Array<{ file: string; doc: Doc }> = []
for (const file of files) {
  for (const parsed of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
    if (parsed.errors.length > 0) throw new Error(`${file}: ${parsed.errors.map(error => error.message).join('; ')}`)
    docs.push({ file, doc: parsed.toJS() as Doc })
  }
}
const find = (kind: string, name: string): Doc => {
  const found = docs.find(({ doc }) => doc.kind === kind && doc.metadata?.name === name)?.doc
  if (found === undefined) throw new Error(`no ${kind} ${name}`)
  return found
}

const deployment = find('Deployment', 'chat-token')
const pod = deployment.spec.template.spec
const container = pod.containers.find((candidate: Doc) => candidate.name === 'chat-token') as Doc
const configMap = find('ConfigMap', 'chat-token')
const secret = find('Secret', 'chat-token')
const hpa = find('HorizontalPodAutoscaler', 'chat-token')
const settings = configMap.data as Record<string, string>

t.test('every manifest parses and validates against the Kubernetes schemas', async t => {
  t.ok(manifests.length >= 8)
  for (const { file, doc } of docs.filter(entry => entry.file !== 'kustomization.yaml')) {
    const model = models[`${doc.apiVersion}/${doc.kind}`]
    t.ok(model !== undefined, `${file}: ${doc.apiVersion} ${doc.kind} is a kind these checks know`)
    if (model === undefined) continue
    t.doesNotThrow(() => new model(doc as never).validate(), `${file}: ${doc.kind} ${doc.metadata?.name} is valid ${doc.apiVersion}`)
  }
  const kinds = docs.filter(entry => entry.file !== 'kustomization.yaml').map(({ doc }) => `${doc.kind}/${doc.metadata.name}`)
  t.comment(`validated ${kinds.length} objects in ${manifests.length} files: ${kinds.join(', ')}`)
})

t.test('kustomization.yaml lists every manifest, and the schemas refuse a broken one', async t => {
  const kustomization = docs.find(({ file }) => file === 'kustomization.yaml')!.doc
  t.same([...kustomization.resources].sort(), manifests)
  t.equal(kustomization.namespace, 'chat-token')
  const broken = structuredClone(deployment)
  broken.spec.replicas = 'two'
  broken.spec.template.spec.containers[0].readinessProbe.periodSeconds = 'often'
  t.throws(() => new Deployment(broken as never).validate(), /spec\/replicas must be integer/)
})

t.test('the Deployment: replicas, probes, the drain, the grace period, resources', async t => {
  t.ok(deployment.spec.replicas >= 2, '2 or more replicas')
  t.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0)
  const port = (name: string): number => container.ports.find((candidate: Doc) => candidate.name === name).containerPort
  t.equal(port('http'), Number(settings.PORT))
  t.equal(port('metrics'), Number(settings.METRICS_PORT))
  t.same(container.readinessProbe.httpGet, { path: '/readyz', port: 'http' })
  t.same(container.livenessProbe.httpGet, { path: '/healthz', port: 'http' })
  t.same(container.startupProbe.httpGet, { path: '/healthz', port: 'http' })

  const preStopS = container.lifecycle.preStop.sleep.seconds as number
  t.ok(preStopS >= 3, 'a preStop sleep lets endpoints drop the pod before SIGTERM')
  const drainS = Number(settings.SHUTDOWN_DRAIN_MS ?? 5000) / 1000
  const timeoutS = Number(settings.HUBSPOT_TIMEOUT_MS ?? 5000) / 1000
  const lookupS = Number(settings.USER_LOOKUP_TIMEOUT_MS ?? 3000) / 1000
  const needed = preStopS + drainS + timeoutS + lookupS + 2
  t.ok(pod.terminationGracePeriodSeconds >= needed, `grace ${pod.terminationGracePeriodSeconds} s ≥ preStop ${preStopS} + drain ${drainS} + HubSpot ${timeoutS} + directory ${lookupS} + 2 s to close = ${needed} s`)

  for (const kind of ['requests', 'limits']) {
    t.ok(container.resources[kind].cpu !== undefined && container.resources[kind].memory !== undefined, `${kind} for cpu and memory`)
  }
})

t.test('every workload runs as the restricted Pod Security Standard asks', async t => {
  t.equal(find('Namespace', 'chat-token').metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted')
  for (const { doc } of docs.filter(entry => entry.doc.kind === 'Deployment')) {
    const spec = doc.spec.template.spec
    const name = doc.metadata.name as string
    t.equal(spec.securityContext.runAsNonRoot, true, `${name}: non-root`)
    t.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault', `${name}: seccomp RuntimeDefault`)
    t.equal(spec.automountServiceAccountToken, false, `${name}: no API token`)
    for (const each of spec.containers as Doc[]) {
      t.match(each.securityContext, {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] }
      }, `${name}/${each.name}: locked down`)
      t.notOk(each.securityContext.privileged, `${name}/${each.name}: not privileged`)
    }
  }
  t.equal(pod.securityContext.runAsUser, 1000, 'the image\'s node user')
  t.equal(container.securityContext.runAsUser, 1000)
  const tmp = container.volumeMounts.find((mount: Doc) => mount.mountPath === '/tmp')
  t.ok(tmp !== undefined, '/tmp mounted')
  t.ok(pod.volumes.find((volume: Doc) => volume.name === tmp.name).emptyDir !== undefined, '/tmp is an emptyDir')
})

t.test('secrets reach the service as files through the _FILE settings, and the placeholders fail closed', async t => {
  const env = Object.fromEntries((container.env as Doc[]).map(entry => [entry.name, entry.value]))
  const secretVolume = pod.volumes.find((volume: Doc) => volume.secret?.secretName === 'chat-token')
  const mount = container.volumeMounts.find((candidate: Doc) => candidate.name === secretVolume.name)
  t.equal(mount.readOnly, true)
  for (const [variable, key] of [['HUBSPOT_ACCESS_TOKEN_FILE', 'hubspot-access-token'], ['JWT_PUBLIC_KEY_FILE', 'jwt-public-key.pem']] as const) {
    t.equal(env[variable], `${mount.mountPath}/${key}`, `${variable} points at the mounted ${key}`)
    t.ok(secret.stringData[key] !== undefined, `the Secret holds ${key}`)
    t.match(secret.stringData[key], /REPLACE-ME/, `${key} is a placeholder, clearly`)
  }
  const everything = JSON.stringify(docs)
  t.notMatch(everything, /BEGIN [A-Z ]*KEY|pat-(na|eu|ap)\d-/, 'nothing that looks like a real key or token')
  for (const variable of ['HUBSPOT_ACCESS_TOKEN', 'JWT_SECRET', 'JWT_PUBLIC_KEY', 'USER_LOOKUP_AUTH']) {
    t.notOk(variable in env || variable in settings, `${variable} is not set as a plain variable`)
  }
  t.notOk((container.env as Doc[]).some(entry => entry.valueFrom?.secretKeyRef !== undefined), 'no secret as an environment variable')

  // The service's own loadConfig: the placeholders are refused, real values with this ConfigMap load.
  const files = new Map(Object.entries(secret.stringData as Record<string, string>).map(([key, value]) => [`${mount.mountPath}/${key}`, value]))
  const placeholders = (() => {
    try {
      loadConfig({ ...settings, ...env }, { readFile: path => files.get(path) ?? '' })
    } catch (error) {
      return error instanceof ConfigError ? error.problems : []
    }
    return []
  })()
  t.match(placeholders, [/^JWT_PUBLIC_KEY_FILE: is not a PEM public key/])
  const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString()
  files.set(env.JWT_PUBLIC_KEY_FILE, pem)
  const config = loadConfig({ ...settings, ...env }, { readFile: path => files.get(path) ?? '' })
  t.equal(config.port, 3000)
  t.equal(config.redisUrl, 'redis://chat-token-redis:6379')
  t.same(config.warnings, [], 'no start-up warning')
})

t.test('Service, PodDisruptionBudget and HorizontalPodAutoscaler fit the Deployment', async t => {
  const podLabels = deployment.spec.template.metadata.labels
  const service = find('Service', 'chat-token')
  t.match(podLabels, service.spec.selector)
  t.same(service.spec.ports.map((port: Doc) => port.targetPort).sort(), ['http', 'metrics'])
  const pdb = find('PodDisruptionBudget', 'chat-token')
  t.match(podLabels, pdb.spec.selector.matchLabels)
  t.ok(pdb.spec.minAvailable < hpa.spec.minReplicas, 'a drain can always take one replica down')
  t.equal(hpa.apiVersion, 'autoscaling/v2')
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-token' })
  t.ok(hpa.spec.minReplicas >= 2)
  t.equal(Number(settings.HUBSPOT_RATE_LIMIT_REPLICAS), hpa.spec.maxReplicas, 'the budget is divided by the most replicas there can be')
})

t.test('NetworkPolicy: egress to DNS, Redis and HTTPS on public addresses only; ingress from the ingress controller', async t => {
  const policy = find('NetworkPolicy', 'chat-token')
  t.match(deployment.spec.template.metadata.labels, policy.spec.podSelector.matchLabels)
  t.same(policy.spec.policyTypes, ['Ingress', 'Egress'])
  const egress = policy.spec.egress as Doc[]
  t.equal(egress.length, 3, 'DNS, Redis, HTTPS: nothing else')
  for (const rule of egress) t.ok(rule.to?.length > 0 && rule.ports?.length > 0, 'every rule names its peers and ports')
  const ports = (rule: Doc): string[] => rule.ports.map((port: Doc) => `${port.protocol}/${port.port}`).sort()
  const dns = egress.find(rule => rule.to[0].podSelector?.matchLabels?.['k8s-app'] === 'kube-dns')!
  t.same(ports(dns), ['TCP/53', 'UDP/53'])
  const redis = egress.find(rule => rule.to[0].podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'chat-token-redis')!
  t.same(ports(redis), ['TCP/6379'])
  const https = egress.find(rule => rule.to[0].ipBlock !== undefined)!
  t.same(ports(https), ['TCP/443'], 'HubSpot and the identity provider: 443 only')
  t.equal(https.to[0].ipBlock.cidr, '0.0.0.0/0')
  t.match(https.to[0].ipBlock.except, ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'], 'no private ranges, no metadata address')

  const ingress = policy.spec.ingress as Doc[]
  t.ok(ingress.every(rule => rule.from.every((peer: Doc) => peer.namespaceSelector !== undefined && peer.ipBlock === undefined)), 'ingress only from named namespaces')
  t.ok(ingress.some(rule => rule.ports.some((port: Doc) => port.port === 'http')), 'the ingress controller reaches http')

  const redisPolicy = find('NetworkPolicy', 'chat-token-redis')
  t.same(redisPolicy.spec.ingress[0].from[0].podSelector.matchLabels, policy.spec.podSelector.matchLabels, 'Redis takes chat-token only')
  t.same(redisPolicy.spec.egress, [])
})

t.test('Redis: a Deployment and a Service where REDIS_URL points', async t => {
  const redis = find('Deployment', 'chat-token-redis')
  const service = find('Service', 'chat-token-redis')
  const url = new URL(settings.REDIS_URL!)
  t.equal(url.hostname, service.metadata.name)
  t.equal(Number(url.port), service.spec.ports[0].port)
  t.match(redis.spec.template.metadata.labels, service.spec.selector)
  t.ok(redis.spec.template.spec.containers[0].args.includes('--maxmemory'), 'bounded memory')
})
