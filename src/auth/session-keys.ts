import { pemBlocks } from '../config/jwt-settings.js'
import { secretList } from '../config/env-reader.js'
import type { RotatingValue } from '../secrets/rotating-value.js'

/**
 * The keys session JWTs verify with, newest first: the HMAC secrets of JWT_SECRET, or the PEM blocks
 * of JWT_PUBLIC_KEY, as they stand after the latest rotation. A session signed with any of them is
 * accepted, so while an identity provider moves to a new key both the new and the old one verify.
 */
export class SessionKeys {
  #keys: readonly string[]

  constructor (source: RotatingValue<string>, private readonly kind: 'secret' | 'public-key') {
    this.#keys = this.#split(source.current)
    source.onChange(next => { this.#keys = this.#split(next) })
  }

  get newest (): string {
    return this.#keys[0]!
  }

  get older (): readonly string[] {
    return this.#keys.slice(1)
  }

  #split (text: string): readonly string[] {
    // Env files often carry a PEM on one line with literal "\n" escapes.
    return this.kind === 'secret' ? secretList(text) : pemBlocks(text.replace(/\\n/g, '\n'))
  }
}
