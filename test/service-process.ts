import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PROJECT_ROOT, TS_LOADER } from './process-helper.js'

/**
 * The service as a process of its own (src/server.ts through the tests' TypeScript loader), for what
 * only a process has: signals (SIGHUP), and environment read at start (NODE_EXTRA_CA_CERTS). Its JSON
 * log lines are kept.
 */

type Teardown = { teardown: (fn: () => unknown) => void }

export interface ServiceProcess {
  child: ChildProcess
  /** The public listener, from the start-up line. */
  url: string
  lines: Array<Record<string, unknown>>
  /** Resolves with the first log line that matches, waiting for it if need be. */
  line: (matches: (line: Record<string, unknown>) => boolean, timeoutMs?: number) => Promise<Record<string, unknown>>
}

export async function startServiceProcess (t: Teardown, env: Record<string, string>): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', TS_LOADER, join(PROJECT_ROOT, 'src/server.ts')], {
    cwd: mkdtempSync(join(tmpdir(), 'chat-token-process-')),
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', PORT: '0', HOST: '127.0.0.1', METRICS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines: Array<Record<string, unknown>> = []
  const waiting = new Set<() => void>()
  let partial = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n')
    partial = parts.pop() ?? ''
    for (const text of parts) if (text.startsWith('{')) lines.push(JSON.parse(text) as Record<string, unknown>)
    for (const wake of waiting) wake()
  })
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.once('exit', () => { for (const wake of waiting) wake() })

  const line: ServiceProcess['line'] = (matches, timeoutMs = 30_000) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => { waiting.delete(look); reject(new Error(`no such log line within ${timeoutMs} ms; stderr: ${stderr}`)) }, timeoutMs)
    function look (): void {
      const found = lines.find(matches)
      if (found === undefined && child.exitCode === null) return
      clearTimeout(timer)
      waiting.delete(look)
      if (found !== undefined) resolve(found)
      else reject(new Error(`the service exited (${child.exitCode}) first; stderr: ${stderr}`))
    }
    waiting.add(look)
    look()
  })
  const started = await line(entry => entry.msg === 'chat-token started')
  return { child, url: String(started.url), lines, line }
}
