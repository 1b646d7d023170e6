import { existsSync, readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'
import type { Env } from './config/types.js'

/**
 * What the service and `npm run doctor` read their configuration from: variables from ./.env (in the
 * working directory), if present, under the real environment, which wins.
 */
export function processEnvironment (): Env {
  const fromFile = existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')) : {}
  return { ...fromFile, ...process.env }
}
