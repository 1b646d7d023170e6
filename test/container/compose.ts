import { readFileSync, writeFileSync } from 'node:fs'

/**
 * Keeps the compose runs of the container test to the values the test chose. docker-compose
 * substitutes `${VAR}` from the shell first, then from `./.env` in the project folder (which
 * `cp .env.example .env` creates); neither may reach a stack under test. So every compose command gets
 * `--env-file` naming a file the test wrote, and an environment without any variable the compose files
 * substitute.
 */

export const PRODUCTION_FILE = 'docker-compose.yml'
export const DEV_FILE = 'docker-compose.dev.yml'

/** Every variable a compose file substitutes (`${NAME}`, `${NAME:-…}`, `${NAME:?…}`, `$NAME`). */
export function substitutedVariables (...files: string[]): Set<string> {
  const names = new Set<string>()
  for (const file of files) {
    for (const match of readFileSync(file, 'utf8').matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(match[1]!)
  }
  return names
}

/** Compose's own variables that would pick other files, profiles, a project name or an env file. */
const composeSteering = /^COMPOSE_(FILE|PROFILES|PROJECT_NAME|PATH_SEPARATOR|ENV_FILES?|IGNORE_ORPHANS)$/

/** This process's environment without anything the compose files substitute or that steers compose. */
export function isolatedEnv (files: string[]): NodeJS.ProcessEnv {
  const substituted = substitutedVariables(...files)
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !substituted.has(name) && !composeSteering.test(name)))
}

/** Writes a compose env file (NAME=value lines; values must be single-line). */
export function writeEnvFile (path: string, values: Record<string, string>): string {
  for (const [name, value] of Object.entries(values)) {
    if (/[\r\n]/.test(value)) throw new Error(`${name}: a compose env file value must be one line`)
  }
  writeFileSync(path, Object.entries(values).map(([name, value]) => `${name}=${value}\n`).join(''))
  return path
}

/** The variable names of the configuration reference's table (docs/configuration.md) (`| \`NAME\` / \`OTHER\` | … |`). */
export function documentedSettings (readme: string): string[] {
  const start = readme.indexOf('\n## Configuration')
  const end = readme.indexOf('\n## ', start + 1)
  const names = new Set<string>()
  for (const line of readme.slice(start, end === -1 ? undefined : end).split('\n')) {
    const firstCell = /^\|([^|]+)\|/.exec(line)?.[1] ?? ''
    for (const match of firstCell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(match[1]!)
  }
  return [...names]
}

/** The `environment:` block of one service in `docker-compose config` output (YAML, two-space indents). */
export function serviceEnvironment (config: string, service: string): Map<string, string> {
  const lines = config.split('\n')
  const env = new Map<string, string>()
  let inServices = false
  let inService = false
  let inEnvironment = false
  for (const line of lines) {
    if (/^\S/.test(line)) inServices = line === 'services:'
    if (!inServices) continue
    if (/^ {2}\S/.test(line)) { inService = line === `  ${service}:`; inEnvironment = false; continue }
    if (!inService) continue
    if (/^ {4}\S/.test(line)) { inEnvironment = line === '    environment:'; continue }
    if (!inEnvironment) continue
    const match = /^ {6}([A-Za-z_][A-Za-z0-9_]*): ?(.*)$/.exec(line)
    if (match !== null) env.set(match[1]!, unquote(match[2]!))
  }
  return env
}

function unquote (value: string): string {
  if (value.length >= 2 && ((value.startsWith("'") && value.endsWith("'")) || (value.startsWith('"') && value.endsWith('"')))) {
    return value.slice(1, -1)
  }
  return value
}
