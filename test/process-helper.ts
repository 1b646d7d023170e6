import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** Running the project's entry points as real processes, for what they print and how they exit. */

type Teardown = { teardown: (fn: () => unknown) => void }

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url))
/**
 * The tests' own TypeScript loader, so `node --import <it> file.ts` runs sources without a build. A
 * process started under tap records coverage too (tap carries its coverage hook into child processes),
 * and it must transpile as the test processes do: coverage of one file from two differently printed
 * versions would not add up (tsx prints each module on one line).
 */
export const TS_LOADER = pathToFileURL(`${PROJECT_ROOT}scripts/test-loader/register.mjs`).href

export interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: Record<string, string>
  /** Default: a fresh empty directory, so a developer's .env cannot leak in. */
  cwd?: string
  timeoutMs?: number
  /** Written to the process's standard input, which is then closed (default: no input at all). */
  input?: string
}

/**
 * Runs a command to its end with only PATH and `env` in its environment (the test runner's own
 * NODE_OPTIONS and loaders stay out).
 */
export function runToExit (command: string, args: string[], options: RunOptions = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? mkdtempSync(join(tmpdir(), 'chat-token-run-')),
      env: { PATH: process.env.PATH ?? '', ...options.env },
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']
    })
    if (options.input !== undefined) child.stdin!.end(options.input)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${options.timeoutMs ?? 60_000} ms; stderr: ${stderr}`))
    }, options.timeoutMs ?? 60_000)
    child.once('error', reject)
    child.once('close', code => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** A TCP listener holding a port on 127.0.0.1, closed at teardown. */
export async function occupyPort (t: Teardown): Promise<number> {
  const server: Server = createServer(socket => socket.destroy())
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise(resolve => server.close(resolve)))
  return (server.address() as { port: number }).port
}

/** Whether the text holds a JavaScript stack frame. */
export function hasStackTrace (text: string): boolean {
  return /^\s+at .+(\(.+:\d+:\d+\)|:\d+:\d+)$/m.test(text)
}
