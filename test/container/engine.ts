import { execFile, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'

/**
 * The container CLIs, whichever this machine has: podman (with the compose socket prepared by
 * ../shared/tools/container-env.sh) or a real Docker engine. Overrides: CONTAINER_ENGINE=docker|podman,
 * COMPOSE="docker compose".
 */

export interface CommandResult {
  code: number
  stdout: string
  stderr: string
}

function available (command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore', timeout: 20_000 }).status === 0
}

export function detectEngine (): string {
  const chosen = process.env.CONTAINER_ENGINE
  if (chosen !== undefined && chosen !== '') return chosen
  if (available('podman', ['--version'])) return 'podman'
  if (available('docker', ['info'])) return 'docker'
  throw new Error('neither podman nor a running docker engine was found (set CONTAINER_ENGINE)')
}

export function detectCompose (): string[] {
  const chosen = process.env.COMPOSE
  if (chosen !== undefined && chosen !== '') return chosen.split(' ')
  if (available('docker-compose', ['version'])) return ['docker-compose']
  if (available('docker', ['compose', 'version'])) return ['docker', 'compose']
  throw new Error('neither docker-compose nor "docker compose" was found (set COMPOSE)')
}

/** Runs a command to its end; never throws for a non-zero exit (callers decide). */
export function run (command: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  const [file = '', ...args] = command
  return new Promise(resolve => {
    execFile(file, args, { timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: options.env ?? process.env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1
      resolve({ code, stdout, stderr: error !== null && error.killed ? `${stderr}\n(killed after timeout)` : stderr })
    })
  })
}

/** Like run, but a non-zero exit is an error carrying the command's last output. */
export async function must (command: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const result = await run(command, options)
  if (result.code !== 0) {
    const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-30).join('\n')
    throw new Error(`${command.join(' ')} exited with ${result.code}:\n${tail}`)
  }
  return result.stdout
}

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

/** Polls until `check` returns a value (not undefined), or fails with the last reason after timeoutMs. */
export async function eventually<T> (what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? ` (last error: ${lastError.message})` : ''}`)
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
}
