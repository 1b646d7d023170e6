/**
 * What the span of an outbound call (HubSpot, the user directory, the JWKS endpoint) records as its
 * URL. The undici instrumentation would record the full URL, query included; the user directory's path
 * (or query) holds the caller's subject, which may well be an email. So a directory call is recorded as
 * the configured template, `{sub}` left in place, and any other call without its query.
 */
export interface RecordedUrl {
  'url.full': string
  'url.path': string
  'url.query': string
}

const MARKER = 'chat-token-subject-marker'

export function createOutboundUrlRecorder (directoryTemplate: string | undefined): (origin: string, path: string) => RecordedUrl {
  const directory = directoryTemplate === undefined ? undefined : templateParts(directoryTemplate)
  return (origin, path) => {
    const pathOnly = path.split('?', 1)[0] ?? ''
    if (directory !== undefined && sameOrigin(origin, directory.origin) && pathOnly.startsWith(directory.pathPrefix)) {
      return { 'url.full': `${directory.origin}${directory.path}${directory.query}`, 'url.path': directory.path, 'url.query': directory.query }
    }
    return { 'url.full': `${normalOrigin(origin)}${pathOnly}`, 'url.path': pathOnly, 'url.query': '' }
  }
}

/** The template's origin (never its user or password), its path and query with `{sub}`, and the path before `{sub}`. */
function templateParts (template: string): { origin: string; path: string; query: string; pathPrefix: string } {
  const parsed = new URL(template.replaceAll('{sub}', MARKER))
  const path = parsed.pathname.replaceAll(MARKER, '{sub}')
  const markerAt = parsed.pathname.indexOf(MARKER)
  return {
    origin: parsed.origin,
    path,
    query: parsed.search.replaceAll(MARKER, '{sub}'),
    pathPrefix: markerAt === -1 ? parsed.pathname : parsed.pathname.slice(0, markerAt)
  }
}

function normalOrigin (origin: string): string {
  try {
    return new URL(origin).origin
  } catch {
    return ''
  }
}

function sameOrigin (origin: string, expected: string): boolean {
  return normalOrigin(origin) === expected
}
