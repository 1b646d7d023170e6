import { hash as digest, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { appendFile, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Clock } from '../deadline.js'
import { redisTargetIdentity } from '../redis/redis-options.js'
import { setWithinLimit } from '../bounded-map.js'

export interface PendingForget {
  /** Keyed hash of the email (CacheCrypto.emailHash): the email itself is never written anywhere. */
  hash: string
  at: number
}

export interface PendingForgetsOptions {
  /** Where they outlive a restart; undefined keeps them in process memory only. */
  file: string | undefined
  /** TOKEN_CACHE_TTL_S: a logout older than this has nothing left to forget, as every token cached before it has expired. */
  maxAgeMs: number
  /** Beyond this many the oldest are dropped. */
  maxEntries: number
  clock: Clock
  /** Told once when the file cannot be read or written; logouts are then kept in memory only. */
  onFileError: (error: Error) => void
}

const LINE = /^([A-Za-z0-9_-]+) (\d+)$/

/**
 * The default file: one per Redis database and key prefix, under the temporary directory (writable in
 * a read-only container, and kept across restarts of the process in it).
 */
export function defaultPendingForgetsFile (redisUrl: string, keyPrefix: string): string {
  const target = digest('sha256', `${redisTargetIdentity(redisUrl)}\n${keyPrefix}`, 'base64url').slice(0, 16)
  return join(tmpdir(), `chat-token-logouts-${target}.log`)
}

/**
 * Logouts (`DELETE /chat-token`) that could not reach Redis, replayed once it can take them. Each is
 * also appended to a file as `<email hash> <time>`, so that a replica restarted during the outage
 * still replays them. Appends are single small writes, so replicas sharing a host and a file do not
 * tear each other's lines; a replay rewrites the file without the lines it replayed.
 */
export class PendingForgets {
  readonly #entries = new Map<string, number>()
  readonly #options: PendingForgetsOptions
  #file: string | undefined
  /** File operations, one after another. */
  #queue: Promise<void> = Promise.resolve()

  constructor (options: PendingForgetsOptions) {
    this.#options = options
    this.#file = options.file
    if (this.#file === undefined) return
    let text = ''
    try {
      // Once, at start-up, before any request: nothing else waits on the event loop yet.
      text = readFileSync(this.#file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.#fail(error)
    }
    for (const { hash, at } of this.#parse(text)) {
      if (at > (this.#entries.get(hash) ?? -1)) this.#remember(hash, at)
    }
  }

  get size (): number {
    return this.#entries.size
  }

  /** Records a logout; resolves once it is in the file (or the file has failed). */
  add (hash: string): Promise<void> {
    const at = this.#options.clock.now()
    this.#remember(hash, at)
    return this.#write(file => appendFile(file, `${hash} ${at}\n`, { mode: 0o600 }))
  }

  /** Those still to replay, oldest first; any older than the cache TTL are dropped. */
  list (): PendingForget[] {
    const oldest = this.#options.clock.now() - this.#options.maxAgeMs
    for (const [hash, at] of this.#entries) if (at < oldest) this.#entries.delete(hash)
    return [...this.#entries].map(([hash, at]) => ({ hash, at }))
  }

  /** These reached Redis: forgets them, unless the same email was logged out again since. */
  done (replayed: PendingForget[]): Promise<void> {
    const gone = new Set<string>()
    for (const { hash, at } of replayed) {
      gone.add(`${hash} ${at}`)
      if (this.#entries.get(hash) === at) this.#entries.delete(hash)
    }
    return this.#write(async file => {
      // Read again: another process sharing the file may have appended since.
      let text = ''
      try {
        text = await readFile(file, 'utf8')
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
        throw error
      }
      const kept = this.#parse(text).filter(entry => !gone.has(`${entry.hash} ${entry.at}`))
      if (kept.length === 0) {
        await rm(file, { force: true })
        return
      }
      const next = `${file}.${randomUUID()}.tmp`
      await writeFile(next, kept.map(({ hash, at }) => `${hash} ${at}\n`).join(''), { mode: 0o600 })
      await rename(next, file)
    })
  }

  #remember (hash: string, at: number): void {
    this.#entries.delete(hash)
    setWithinLimit(this.#entries, hash, at, this.#options.maxEntries)
  }

  #parse (text: string): PendingForget[] {
    const oldest = this.#options.clock.now() - this.#options.maxAgeMs
    const entries: PendingForget[] = []
    for (const line of text.split('\n')) {
      const match = LINE.exec(line)
      if (match === null) continue
      const at = Number(match[2])
      if (at >= oldest) entries.push({ hash: match[1]!, at })
    }
    return entries
  }

  #write (operation: (file: string) => Promise<void>): Promise<void> {
    const file = this.#file
    if (file === undefined) return this.#queue
    this.#queue = this.#queue.then(() => operation(file)).catch((error: unknown) => this.#fail(error))
    return this.#queue
  }

  #fail (error: unknown): void {
    if (this.#file === undefined) return
    this.#file = undefined
    this.#options.onFileError(error instanceof Error ? error : new Error(String(error)))
  }
}
