/* global process, URL */
// Module hooks for register.mjs (they run on Node's loader thread).
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const TYPESCRIPT = /\.(?:ts|mts)$/

const TRANSFORM_OPTIONS = {
  loader: 'ts',
  format: 'esm',
  target: 'node20',
  sourcemap: 'inline',
  sourcesContent: true,
  // The compiler options esbuild honours, as tsconfig.json sets them.
  tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } },
}

// Transpiled modules are kept by the hash of their path, their text, esbuild's version and the options
// above: a test process whose sources are all unchanged since the last run never starts esbuild (a
// process of its own) at all.
const CACHE_DIR = fileURLToPath(new URL('../../node_modules/.cache/chat-token-test-loader/', import.meta.url))
const ESBUILD_VERSION = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('esbuild/package.json'), 'utf8')).version
const CACHE_SALT = `${ESBUILD_VERSION}\0${JSON.stringify(TRANSFORM_OPTIONS)}`

/**
 * Sources import each other as `./file.js` (what the compiled dist/ holds); when no such file exists
 * beside the importer, the `.ts` source of that name is meant.
 */
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    const aPath = specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('file:')
    if (!aPath || !specifier.endsWith('.js') || error?.code !== 'ERR_MODULE_NOT_FOUND') throw error
    return nextResolve(`${specifier.slice(0, -'.js'.length)}.ts`, context)
  }
}

export async function load(url, context, nextLoad) {
  const path = url.startsWith('file:') ? fileURLToPath(url.split('?')[0]) : undefined
  if (path === undefined || !TYPESCRIPT.test(path)) return nextLoad(url, context)
  const source = await readFile(path, 'utf8')
  return { format: 'module', source: await transpiled(path, source), shortCircuit: true }
}

async function transpiled(path, source) {
  const key = createHash('sha256').update(`${CACHE_SALT}\0${path}\0${source}`).digest('hex')
  const cached = `${CACHE_DIR}${key}.js`
  const hit = await readFile(cached, 'utf8').catch(() => undefined)
  if (hit !== undefined) return hit
  const { transform } = await import('esbuild')
  const { code } = await transform(source, { ...TRANSFORM_OPTIONS, sourcefile: path })
  // Written aside and renamed into place: a process reading it meanwhile sees all of it or nothing.
  await mkdir(CACHE_DIR, { recursive: true })
  const partial = `${cached}.${process.pid}.partial`
  await writeFile(partial, code)
  await rename(partial, cached)
  return code
}
