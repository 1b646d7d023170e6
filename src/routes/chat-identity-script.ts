import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ServiceError } from '../errors.js'

/** Where `npm run build` puts the browser helper: dist/public, next to the compiled routes folder. */
export const DEFAULT_BROWSER_HELPER_DIR = fileURLToPath(new URL('../public/', import.meta.url))

const SCRIPTS = { '/chat-identity.js': 'chat-identity.js', '/chat-identity.mjs': 'chat-identity.mjs' } as const

/**
 * The URL is not versioned, so a day is the longest a browser may keep running a previous helper after a
 * deploy (it revalidates by ETag after that). `?v=<version>` (the ETag without quotes, of the plain or
 * the gzipped answer) names one build and may be cached for good; an old or unknown `v` (say, a replica
 * still on the previous build during a rolling deploy) gets the current file but must revalidate, so no
 * cache pins a wrong pairing.
 */
export const CACHE_CONTROL = {
  unversioned: 'public, max-age=86400',
  versioned: 'public, max-age=31536000, immutable',
  otherVersion: 'public, no-cache'
} as const

export interface ChatIdentityScriptOptions {
  /** Folder holding chat-identity.js and chat-identity.mjs. */
  dir: string
}

interface Script {
  body: Buffer
  gzipped: Buffer
  version: string
  etag: string
  gzippedEtag: string
}

/** Reads and precompresses once at start-up; a missing build is a warning and a 404, never a crash. */
async function loadScript (path: string): Promise<Script> {
  const body = await readFile(path)
  const version = createHash('sha256').update(body).digest('base64url').slice(0, 16)
  // A gzipped answer is a different representation, so it gets its own strong validator.
  return { body, gzipped: gzipSync(body, { level: 9 }), version, etag: `"${version}"`, gzippedEtag: `"${version}-gz"` }
}

function acceptsGzip (header: string | undefined): boolean {
  if (header === undefined) return false
  return header.split(',').some(part => {
    const [coding = '', ...params] = part.split(';').map(piece => piece.trim().toLowerCase())
    if (coding !== 'gzip' && coding !== '*') return false
    const q = params.find(param => param.startsWith('q='))
    return q === undefined || Number(q.slice(2)) > 0
  })
}

/** If-None-Match uses the weak comparison: W/"x" matches "x". */
function noneMatch (header: string | undefined, script: Script): boolean {
  if (header === undefined) return false
  return header.split(',').some(tag => {
    const bare = tag.trim().replace(/^W\//, '')
    return bare === '*' || bare === script.etag || bare === script.gzippedEtag
  })
}

export async function chatIdentityScriptRoutes (app: FastifyInstance, options: ChatIdentityScriptOptions): Promise<void> {
  const missing: string[] = []
  for (const [url, file] of Object.entries(SCRIPTS)) {
    let script: Script | undefined
    try {
      script = await loadScript(`${options.dir.replace(/\/?$/, '/')}${file}`)
    } catch {
      missing.push(file)
    }
    app.get<{ Querystring: { v?: unknown } }>(url, async (request, reply) => {
      if (script === undefined) throw new ServiceError('not_found', 'The browser helper is not built on this server')
      return sendScript(request, reply, script)
    })
  }
  if (missing.length > 0) {
    app.log.warn({ dir: options.dir, missing }, 'browser helper not built (npm run build): its routes answer 404')
  }
}

/** Adds accept-encoding to Vary, keeping what is there (CORS has put `Origin` in it by now). */
function addVary (reply: FastifyReply): void {
  const present = String(reply.getHeader('vary') ?? '')
  const fields = present.split(',').map(field => field.trim().toLowerCase())
  if (fields.includes('*') || fields.includes('accept-encoding')) return
  reply.header('vary', present.trim() === '' ? 'accept-encoding' : `${present}, accept-encoding`)
}

/**
 * `v` names this build when it is the ETag without its quotes, of either representation: devtools show
 * the gzipped one (`<version>-gz`) to whoever copies it from a compressed answer.
 */
const namesBuild = (version: unknown, script: Script): boolean =>
  version === script.version || version === `${script.version}-gz`

function sendScript (request: FastifyRequest<{ Querystring: { v?: unknown } }>, reply: FastifyReply, script: Script): FastifyReply {
  const version = request.query.v
  const gzip = acceptsGzip(request.headers['accept-encoding'])
  addVary(reply)
  reply
    .header('content-type', 'text/javascript; charset=utf-8')
    .header('cache-control', version === undefined
      ? CACHE_CONTROL.unversioned
      : namesBuild(version, script) ? CACHE_CONTROL.versioned : CACHE_CONTROL.otherVersion)
    .header('etag', gzip ? script.gzippedEtag : script.etag)
    // Sites include it from the service's origin when they do not route it through their own.
    .header('cross-origin-resource-policy', 'cross-origin')
  if (noneMatch(request.headers['if-none-match'], script)) return reply.code(304).send()
  if (!gzip) return reply.send(script.body)
  return reply.header('content-encoding', 'gzip').send(script.gzipped)
}
