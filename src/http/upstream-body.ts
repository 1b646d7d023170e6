import type { Dispatcher } from 'undici'

/** Reading an upstream's answer (HubSpot, the JWKS, the user directory) within a size limit. */

const MAX_UPSTREAM_BODY_BYTES = 64 * 1024

export class BodyTooLargeError extends Error {
  constructor () {
    super('upstream body over the size limit')
    this.name = 'BodyTooLargeError'
  }
}

/**
 * Reads the body as text, refusing (and destroying the stream) past `limit` bytes. Event listeners
 * rather than `for await`: the async iterator's machinery cost more than the read itself on a miss.
 */
export function readBodyText (body: Dispatcher.ResponseData['body'], limit = MAX_UPSTREAM_BODY_BYTES): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    body.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        body.destroy()
        reject(new BodyTooLargeError())
        return
      }
      chunks.push(chunk)
    })
    let ended = false
    body.once('end', () => {
      ended = true
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8'))
    })
    body.once('error', reject)
    // Destroyed without an error (by us above, or by undici): settles the promise if nothing else did.
    // Checked first, because building an Error (and its stack trace) on every normal close is a
    // noticeable part of a miss's CPU.
    body.once('close', () => {
      if (!ended) reject(new Error('upstream body closed before its end'))
    })
  })
}
