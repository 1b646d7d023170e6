import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ACCESS_TOKEN, JWT_SECRET } from '../helper.js'
import { TS_LOADER } from '../process-helper.js'

/**
 * The real service as a child process (src/server.ts through the tests' TypeScript loader), configured
 * by environment only and started in an empty directory, so a developer's .env cannot leak in.
 */

type Teardown = { teardown: (fn: () => unknown) => void }

const serverEntry = fileURLToPath(new URL('../../src/server.ts', import.meta.url))

export interface ServiceProcess {
  url: string
  child: ChildProcess
  logLines: () => Array<Record<string, unknown>>
  /** SIGTERM, and the exit code once it has exited (spans still queued are exported on the way out). */
  stop: () => Promise<number | null>
}

export async function startServiceProcess (t: Teardown, env: Record<string, string>, nodeArgs: string[] = []): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', TS_LOADER, ...nodeArgs, serverEntry], {
    cwd: mkdtempSync(join(tmpdir(), 'chat-token-telemetry-')),
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      SHUTDOWN_DRAIN_MS: '0',
      HUBSPOT_ACCESS_TOKEN: ACCESS_TOKEN,
      JWT_SECRET,
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines: Array<Record<string, unknown>> = []
  let buffered = ''
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the service did not start within 60 s; stderr: ${stderr}`)), 60_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const complete = buffered.split('\n')
      buffered = complete.pop() ?? ''
      for (const text of complete) {
        if (!text.startsWith('{')) continue
        const line = JSON.parse(text) as Record<string, unknown>
        lines.push(line)
        if (line.msg === 'chat-token started') {
          clearTimeout(timer)
          resolve(String(line.url))
        }
      }
    })
    void exited.then(code => {
      clearTimeout(timer)
      reject(new Error(`the service exited (${code}) before it started; stderr: ${stderr}`))
    })
  })
  return {
    url,
    child,
    logLines: () => [...lines],
    stop: async () => {
      child.kill('SIGTERM')
      return exited
    }
  }
}
