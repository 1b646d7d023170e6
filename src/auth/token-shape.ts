import { parseJsonObject } from '../json-object.js'

/**
 * Structural checks on a compact JWS before any key work: three base64url segments, JSON objects
 * without duplicate keys (parsers disagree on which duplicate wins, so an ambiguous token is refused),
 * and no `crit` header (RFC 7515 §4.1.11: extensions we do not understand must be rejected).
 * Returns a reason when the token is refused.
 */
const segmentPattern = /^[A-Za-z0-9_-]+$/

export function tokenShapeProblem (token: string): string | undefined {
  const segments = token.split('.')
  if (segments.length !== 3) return 'is not a compact JWS (three segments)'
  const [header = '', payload = '', signature = ''] = segments
  if (!segmentPattern.test(header) || !segmentPattern.test(payload) || !segmentPattern.test(signature)) return 'is not base64url'
  const headerJson = Buffer.from(header, 'base64url').toString('utf8')
  const headerObject = parseJsonObject(headerJson)
  if (headerObject === undefined) return 'has a header that is not a JSON object'
  if (Object.hasOwn(headerObject, 'crit')) return 'has a critical header extension'
  if (hasDuplicateKeys(headerJson)) return 'has duplicate keys in its header'
  if (hasDuplicateKeys(Buffer.from(payload, 'base64url').toString('utf8'))) return 'has duplicate keys in its claims'
  return undefined
}

/**
 * Walks JSON text (already known to parse, or about to be refused by the verifier) and reports a key
 * repeated within one object. Keys are compared after JSON unescaping, so "a" and "\u0061" collide.
 */
export function hasDuplicateKeys (json: string): boolean {
  const objects: Array<Set<string> | null> = []
  let expectKey = false
  for (let i = 0; i < json.length; i++) {
    const char = json[i]
    if (char === '"') {
      let end = i + 1
      while (end < json.length && json[end] !== '"') end += json[end] === '\\' ? 2 : 1
      const top = objects[objects.length - 1]
      if (expectKey && top !== undefined && top !== null) {
        let key: string
        try {
          key = JSON.parse(json.slice(i, end + 1)) as string
        } catch {
          return false
        }
        if (top.has(key)) return true
        top.add(key)
      }
      expectKey = false
      i = end
    } else if (char === '{') {
      objects.push(new Set())
      expectKey = true
    } else if (char === '[') {
      objects.push(null)
    } else if (char === '}' || char === ']') {
      objects.pop()
    } else if (char === ',') {
      expectKey = objects[objects.length - 1] !== null
    }
  }
  return false
}
