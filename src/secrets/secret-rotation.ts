import type { FastifyBaseLogger } from 'fastify'
import { accessTokenProblem, cacheKeyProblems, headerValueProblem } from '../config/load-config.js'
import { algorithmsForPublicKey, jwtSecretProblems, publicKeysFrom } from '../config/jwt-settings.js'
import type { Config } from '../config/types.js'
import type { ReadinessCheck } from '../readiness.js'
import { RotatingValue } from './rotating-value.js'
import { watchFile, type WatchedFile } from './watched-file.js'

/**
 * The secrets that may be replaced without a restart, each read from its `_FILE` when one is set:
 * re-read when the file changes (a directory watch, and a stat every `checkIntervalMs` as a fallback)
 * and on SIGHUP (`reload`). A new value is checked as at start-up; one that would not pass is refused
 * with a log line, and the value in use stays. Without a file a secret simply never changes.
 */
export interface RotatingSecrets {
  hubspotAccessToken: RotatingValue<string>
  /** JWT_SECRET's secrets or JWT_PUBLIC_KEY's PEM text; undefined with a JWKS. */
  jwtKey: RotatingValue<string> | undefined
  userLookupAuth: RotatingValue<string | undefined>
  cacheKey: RotatingValue<string | undefined>
  /** Reads every secret file now (SIGHUP). */
  reload: () => Promise<void>
  /** For /readyz, when any secret comes from a file: `ok`, or `rotation_refused` while a file holds an unusable value. */
  check: ReadinessCheck | undefined
  close: () => void
}

export interface SecretRotationOptions {
  log: FastifyBaseLogger
  /** How often each file is stat'ed besides the directory watch (default 10 s). */
  checkIntervalMs?: number
  /** false: the periodic check alone, no directory watch. */
  watchDirectories?: boolean
}

const DEFAULT_CHECK_INTERVAL_MS = 10_000

interface RotatingFile<T> {
  setting: string
  path: string | undefined
  value: RotatingValue<T>
  /** The value a file's text gives, or the problems that refuse it. */
  parse: (text: string) => { value: T } | { problems: string[] }
}

export function watchSecrets (config: Config, options: SecretRotationOptions): RotatingSecrets {
  const { log } = options
  const files = config.secretFiles
  const hubspotAccessToken = new RotatingValue(config.hubspot.accessToken)
  const key = config.jwt.key
  const jwtKey = key.kind === 'jwks' ? undefined : new RotatingValue(key.kind === 'secret' ? key.secret : key.pem)
  const userLookupAuth = new RotatingValue<string | undefined>(config.userLookup?.authorization)
  const cacheKey = new RotatingValue<string | undefined>(config.cacheKey)

  const problemsOrValue = <T>(problems: Array<string | undefined>, value: T): { value: T } | { problems: string[] } => {
    const found = problems.filter((problem): problem is string => problem !== undefined)
    return found.length > 0 ? { problems: found } : { value }
  }
  const rotating: Array<RotatingFile<string> | RotatingFile<string | undefined>> = [
    {
      setting: 'HUBSPOT_ACCESS_TOKEN_FILE',
      path: files.hubspotAccessToken,
      value: hubspotAccessToken,
      parse: text => problemsOrValue([accessTokenProblem(text)], text)
    },
    {
      setting: 'USER_LOOKUP_AUTH_FILE',
      path: config.userLookup === undefined ? undefined : files.userLookupAuth,
      value: userLookupAuth,
      parse: text => problemsOrValue([headerValueProblem(text)], text)
    },
    {
      setting: 'CACHE_KEY_FILE',
      path: files.cacheKey,
      value: cacheKey,
      parse: text => problemsOrValue(cacheKeyProblems(text), text)
    }
  ]
  if (jwtKey !== undefined && key.kind === 'secret') {
    rotating.push({ setting: 'JWT_SECRET_FILE', path: files.jwtSecret, value: jwtKey, parse: text => problemsOrValue(jwtSecretProblems(text, config.demo), text) })
  }
  if (jwtKey !== undefined && key.kind === 'public-key') {
    rotating.push({ setting: 'JWT_PUBLIC_KEY_FILE', path: files.jwtPublicKey, value: jwtKey, parse: text => publicKeyRotation(text, config) })
  }

  const refused = new Set<string>()
  const watches: WatchedFile[] = []
  for (const file of rotating) {
    const path = file.path
    if (path === undefined || file.value.current === undefined) continue
    watches.push(watchFile({
      path,
      initial: file.value.current,
      checkIntervalMs: options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS,
      watchDirectory: options.watchDirectories,
      onContent: text => {
        const parsed = text === '' ? { problems: ['the file is empty'] } : file.parse(text)
        if ('problems' in parsed) {
          refused.add(file.setting)
          log.warn({ setting: file.setting, problems: parsed.problems }, 'secret rotation refused: the new value is not usable, the previous one stays in use')
          return
        }
        refused.delete(file.setting)
        if (parsed.value === file.value.current) return
        try {
          // Narrowed per entry above; the union of holders cannot say that T matches on its own.
          (file.value as RotatingValue<string | undefined>).set(parsed.value)
        } catch (error) {
          log.error({ err: error, setting: file.setting }, 'secret rotation failed part-way: restart the replica')
          return
        }
        log.info({ setting: file.setting }, 'secret rotated: new requests use the new value')
      },
      onReadError: error => {
        log.warn({ setting: file.setting, code: error.code }, 'secret file cannot be read: the value in use stays')
      }
    }))
  }

  return {
    hubspotAccessToken,
    jwtKey,
    userLookupAuth,
    cacheKey,
    reload: async () => { await Promise.all(watches.map(watch => watch.check())) },
    check: watches.length === 0
      ? undefined
      : () => refused.size === 0
          ? 'ok'
          : { status: 'rotation_refused', reason: `${[...refused].join(', ')}: the new content is not usable (see the log); the previous value stays in use` },
    close: () => { for (const watch of watches) watch.close() }
  }
}

/**
 * A new JWT_PUBLIC_KEY must be public keys that can verify one of the algorithms fixed at start-up
 * (JWT_ALGORITHMS, or those of the first key): moving to another key type needs a restart.
 */
function publicKeyRotation (text: string, config: Config): { value: string } | { problems: string[] } {
  const pem = text.replace(/\\n/g, '\n')
  const keys = publicKeysFrom(pem)
  if (typeof keys === 'string') return { problems: [keys] }
  const allowed = new Set<string>(config.jwt.algorithms)
  const unusable = keys.findIndex(one => !algorithmsForPublicKey(one).some(algorithm => allowed.has(algorithm)))
  if (unusable !== -1) {
    return { problems: [`key ${unusable + 1} verifies none of the algorithms in use (${config.jwt.algorithms.join(', ')}): a new key type needs a restart`] }
  }
  return { value: pem }
}
