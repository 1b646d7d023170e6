import { type FSWatcher, type Stats, statSync, watch } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'

/**
 * Notices when a secret file's content changes. Kubernetes updates a mounted secret by swapping a
 * symlink in the file's directory (`..data`), so the directory is watched, not the file: a watch on
 * the file would keep following the old inode for ever. A periodic stat of the path (through its
 * symlinks) catches what the watch misses (network file systems, a watch that failed, editors that
 * replace the directory), and `check()` reads at once (SIGHUP).
 *
 * Events are only a hint: each leads to one read after a short quiet spell, so a writer that truncates
 * and then writes is read once it is done, and `onContent` hears only real changes of the trimmed text.
 */
export interface WatchedFileOptions {
  path: string
  /** The content the service already uses (trimmed): the first change is measured against it. */
  initial: string
  onContent: (text: string) => void
  /** A read failed (the file vanished, permissions): said once per kind of failure, until a read works. */
  onReadError: (error: NodeJS.ErrnoException) => void
  /** How often the path is stat'ed as a fallback for the directory watch. */
  checkIntervalMs: number
  /** Quiet time after a change event before the file is read. */
  settleMs?: number
  /** false: no directory watch, the periodic check alone (file systems without change events; tests). */
  watchDirectory?: boolean
}

export interface WatchedFile {
  /** Reads the file now and reports a change, if any. */
  check: () => Promise<void>
  close: () => void
}

const DEFAULT_SETTLE_MS = 100

export function watchFile (options: WatchedFileOptions): WatchedFile {
  const settleMs = options.settleMs ?? DEFAULT_SETTLE_MS
  let last = options.initial
  let lastStat: string | undefined
  let failure: string | undefined
  let settleTimer: NodeJS.Timeout | undefined
  let closed = false
  /** Reads one after another: a slow read never overtakes a newer one. */
  let reading: Promise<void> = Promise.resolve()

  async function readNow (): Promise<void> {
    let text: string
    try {
      text = (await readFile(options.path, 'utf8')).trim()
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error'
      if (failure !== code) options.onReadError(error as NodeJS.ErrnoException)
      failure = code
      return
    }
    failure = undefined
    if (closed || text === last) return
    last = text
    options.onContent(text)
  }

  function check (): Promise<void> {
    // A listener that throws must not stop every later read: the chain carries on regardless.
    reading = reading.then(readNow).catch(() => undefined)
    return reading
  }

  function soon (): void {
    if (closed) return
    clearTimeout(settleTimer)
    settleTimer = setTimeout(() => { void check() }, settleMs)
    settleTimer.unref()
  }

  let watcher: FSWatcher | undefined
  if (options.watchDirectory !== false) {
    try {
      // Any change in the directory counts: Kubernetes names `..data` and timestamped directories, never
      // the file itself, and a read that finds the same text costs nothing.
      watcher = watch(dirname(options.path), { persistent: false }, soon)
      // A watch that breaks (the directory removed, inotify limits) leaves the periodic check to do the work.
      watcher.on('error', () => { watcher?.close() })
    } catch {
      watcher = undefined
    }
  }

  const signatureOf = (info: Stats): string => `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`
  async function statNow (): Promise<void> {
    try {
      const signature = signatureOf(await stat(options.path))
      if (signature !== lastStat) soon()
      lastStat = signature
    } catch {
      // Missing for a moment during a swap, or gone: the read says so once it is tried.
      if (lastStat !== undefined) soon()
      lastStat = undefined
    }
  }
  try {
    // Once, at start-up: the file as the service read it is the baseline.
    lastStat = signatureOf(statSync(options.path))
  } catch {
    lastStat = undefined
  }
  const poller = setInterval(() => { void statNow() }, options.checkIntervalMs)
  poller.unref()

  return {
    check,
    close: () => {
      closed = true
      clearTimeout(settleTimer)
      clearInterval(poller)
      watcher?.close()
    }
  }
}
