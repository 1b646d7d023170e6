import { existsSync, readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'
import { buildApp } from './app.js'
import { ConfigError, type Env, loadConfig } from './config.js'
import type { Lifecycle } from './routes/health.js'

/** The one file that touches the process: environment, listening, signals. */

/** Variables from ./.env, if present; the real environment wins. */
function environment (): Env {
  const fromFile = existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')) : {}
  return { ...fromFile, ...process.env }
}

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig(environment())
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`chat-token: ${error.message}\n`)
      process.exit(1)
    }
    throw error
  }

  const lifecycle: Lifecycle = { draining: false }
  const app = await buildApp(config, { lifecycle })

  let closing = false
  const shutdown = async (signal: string): Promise<void> => {
    if (closing) {
      app.log.warn({ signal }, 'second signal, exiting at once')
      process.exit(1)
    }
    closing = true
    lifecycle.draining = true
    app.log.info({ signal, drainMs: config.shutdownDrainMs }, 'draining before shutdown')
    await new Promise(resolve => setTimeout(resolve, config.shutdownDrainMs))
    await app.close()
    process.exit(0)
  }
  process.on('SIGTERM', signal => { void shutdown(signal) })
  process.on('SIGINT', signal => { void shutdown(signal) })

  await app.listen({ port: config.port, host: config.host })
}

main().catch(error => {
  process.stderr.write(`chat-token: failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
