import type { IncomingMessage, ServerResponse } from 'node:http'

export const JSON_CONTENT_TYPE = 'application/json;charset=utf-8'

export interface ReceivedBody {
  text: string
  bytes: number
  tooLarge: boolean
}

/**
 * Reads the whole request. Past `limitBytes` it keeps draining without buffering, so the client
 * finishes writing and reads our 413 instead of hitting a reset mid-upload.
 */
export function readBody (req: IncomingMessage, limitBytes: number): Promise<ReceivedBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= limitBytes) chunks.push(chunk)
    })
    req.on('end', () => {
      const tooLarge = bytes > limitBytes
      resolve({ text: tooLarge ? '' : Buffer.concat(chunks).toString('utf8'), bytes, tooLarge })
    })
    req.on('error', reject)
    // After 'end' this is a no-op; before it, the client went away mid-upload.
    req.on('close', () => reject(new Error('request closed before its end')))
  })
}

/** Parsed JSON when the body is JSON, the raw text otherwise, undefined when empty. */
export function recordedBody (body: ReceivedBody): unknown {
  if (body.tooLarge) return `[${body.bytes} bytes, over the limit]`
  if (body.text === '') return undefined
  try {
    return JSON.parse(body.text) as unknown
  } catch {
    return body.text
  }
}

export function sendJson (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {}
): void {
  if (res.destroyed || res.headersSent) return
  if (status === 204) {
    res.writeHead(status, headers).end()
    return
  }
  const payload = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, {
    ...headers,
    'Content-Type': JSON_CONTENT_TYPE,
    'Content-Length': String(Buffer.byteLength(payload))
  })
  res.end(payload)
}

export function pathnameOf (url: string | undefined): string {
  const target = url ?? '/'
  const query = target.indexOf('?')
  return query === -1 ? target : target.slice(0, query)
}
