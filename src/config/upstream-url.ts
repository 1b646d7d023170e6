import { isIP } from 'node:net'
import type { EnvReader } from './env-reader.js'

/** Checks an upstream URL that was already read; returns it, or undefined when it is refused. */
export type UpstreamUrlCheck = (name: string, url: string | undefined) => string | undefined

/**
 * Plain http to HubSpot, the JWKS or the user directory would let anyone on the path read the access
 * token or forge keys and identities. Loopback is fine (the emulator, a sidecar); a private network
 * must be allowed explicitly. The host is read as the HTTP client will read it (WHATWG URL).
 */
export function httpsUnlessLoopback (read: EnvReader, allowHttp: boolean): UpstreamUrlCheck {
  return (name, url) => {
    if (url === undefined || allowHttp) return url
    const parsed = new URL(url.replaceAll('{sub}', 'sub'))
    if (parsed.protocol === 'https:' || isLoopbackHost(parsed.hostname)) return url
    read.problem(name, `must use https (http is allowed only for a loopback host, or with ALLOW_HTTP_UPSTREAMS=true on a private network), got host "${parsed.hostname}"`)
    return undefined
  }
}

function isLoopbackHost (hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true
  return isIP(hostname) === 4 && hostname.startsWith('127.')
}
