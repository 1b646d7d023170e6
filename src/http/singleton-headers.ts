import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ServiceError } from '../errors.js'

/**
 * Headers that must appear at most once. Node keeps the first of a duplicated Host or Authorization and
 * silently drops the rest, and joins duplicated Origin or Sec-Fetch-Site values with ", ": a proxy in
 * front may have read the other copy, so the service and the proxy would disagree about who is calling
 * and from where. RFC 9112 §3.2 requires a 400 for a second Host; the others are refused alike.
 */
export const SINGLETON_HEADERS: ReadonlySet<string> = new Set(['host', 'authorization', 'origin', 'sec-fetch-site'])
/** The longest name in SINGLETON_HEADERS: a cheap length test skips most headers before lower-casing. */
const longestName = Math.max(...[...SINGLETON_HEADERS].map(name => name.length))

/** The first singleton header that `rawHeaders` (name, value, name, value…) carries twice, if any. */
export function duplicatedSingleton (rawHeaders: readonly string[]): string | undefined {
  let seen: string[] | undefined
  for (let index = 0; index < rawHeaders.length; index += 2) {
    const raw = rawHeaders[index] ?? ''
    if (raw.length > longestName) continue
    const name = raw.toLowerCase()
    if (!SINGLETON_HEADERS.has(name)) continue
    if (seen === undefined) seen = [name]
    else if (seen.includes(name)) return name
    else seen.push(name)
  }
  return undefined
}

/** Refuses an ambiguous request before any other work (before the session is even looked at). */
async function singletonHeadersPlugin (app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', (request, _reply, done) => {
    const duplicated = duplicatedSingleton(request.raw.rawHeaders)
    if (duplicated === undefined) {
      done()
      return
    }
    done(new ServiceError('bad_request', `The ${duplicated} header was sent more than once`))
  })
}

export const singletonHeaders = fp(singletonHeadersPlugin, { name: 'singleton-headers', fastify: '5.x' })
