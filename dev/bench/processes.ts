import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** Starting, pinning, measuring and stopping the processes a benchmark drives. */

const CLOCK_TICKS_PER_SECOND = 100
const PAGE_SIZE_BYTES = 4096
export const hasTaskset = existsSync('/usr/bin/taskset')

export interface BenchProcess {
  name: string
  child: ChildProcess
  pid: number
  /** SIGKILL by default; SIGTERM lets the service close and write out its buffered log lines. */
  stop: (signal?: NodeJS.Signals) => Promise<void>
}

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>(resolve => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/**
 * Spawns `command args` pinned to `cpu` (when taskset exists). Output is discarded unless it fails, or
 * kept in BENCH_LOG_DIR/<name>.log when that is set (the service's request lines, for a closer look).
 */
export function startProcess (name: string, command: string, args: string[], env: Record<string, string>, cpu?: number): BenchProcess {
  const argv = hasTaskset && cpu !== undefined ? ['taskset', '-c', String(cpu), command, ...args] : [command, ...args]
  const logDir = process.env.BENCH_LOG_DIR
  const stdout = logDir === undefined ? 'ignore' : openSync(`${logDir}/${name}.log`, 'a')
  const child = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', stdout, 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000) })
  child.on('exit', code => {
    if (code !== 0 && code !== null) process.stderr.write(`[bench] ${name} exited with ${code}: ${stderr}\n`)
  })
  return {
    name,
    child,
    pid: child.pid!,
    stop: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill(signal)
      await exited
    }
  }
}

/** Polls `url` until it answers 200; returns the milliseconds it took from `since`. */
export async function waitForHealthy (url: string, since: number, timeoutMs = 20_000): Promise<number> {
  const deadline = since + timeoutMs
  for (;;) {
    try {
      const response = await fetch(url)
      await response.arrayBuffer()
      if (response.status === 200) return performance.now() - since
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`${url} not healthy after ${timeoutMs} ms`)
    await sleep(5)
  }
}

/** CPU seconds (user + system) the process has used so far, from /proc. */
export function cpuSeconds (pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND
}

export function rssBytes (pid: number): number {
  const pages = Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1])
  return pages * PAGE_SIZE_BYTES
}
