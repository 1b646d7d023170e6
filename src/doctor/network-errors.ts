/** What a failed connection means, in words an operator can act on. */

const tlsCodes = new Set([
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO'
])

/** The error's code, looking through the `cause` that fetch-style errors wrap it in. */
export function errorCode (error: unknown): string | undefined {
  let current: unknown = error
  for (let depth = 0; depth < 3 && typeof current === 'object' && current !== null; depth++) {
    const { code, name, cause } = current as { code?: unknown; name?: unknown; cause?: unknown }
    if (typeof code === 'string') return code
    if (name === 'TimeoutError' || name === 'AbortError') return 'TIMEOUT'
    current = cause
  }
  return undefined
}

/** One sentence about a connection to `url` that failed with `code`; `variable` names the setting. */
export function connectionProblem (code: string | undefined, url: URL, variable: string, timeoutMs: number): string {
  const where = `${url.hostname}${url.port === '' ? '' : `:${url.port}`}`
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `the host "${url.hostname}" of ${variable} does not resolve (${code}): check the name and the DNS this machine uses`
  if (code === 'ECONNREFUSED') return `nothing accepts connections at ${where} (ECONNREFUSED): check ${variable}'s host and port`
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return `connecting to ${where} timed out (${code}): a firewall or network policy may drop the traffic`
  if (code === 'TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return `${where} did not answer within ${timeoutMs} ms`
  if (code !== undefined && (tlsCodes.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL'))) {
    return `TLS with ${where} failed (${code}): a proxy that intercepts TLS needs its CA certificate in NODE_EXTRA_CA_CERTS`
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return `${where} closed the connection before answering (${code})`
  return `${where} could not be reached (${code ?? 'unknown error'})`
}
