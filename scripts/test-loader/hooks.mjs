// Module hooks for register.mjs (they run on Node's loader thread).
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { transform } from 'esbuild'

const TYPESCRIPT = /\.(?:ts|mts)$/

/**
 * Sources import each other as `./file.js` (what the compiled dist/ holds); when no such file exists
 * beside the importer, the `.ts` source of that name is meant.
 */
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context)
  } catch (error) {
    const relative = specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('file:')
    if (!relative || !specifier.endsWith('.js') || error?.code !== 'ERR_MODULE_NOT_FOUND') throw error
    return nextResolve(`${specifier.slice(0, -'.js'.length)}.ts`, context)
  }
}

export async function load(url, context, nextLoad) {
  const path = url.startsWith('file:') ? fileURLToPath(url.split('?')[0]) : undefined
  if (path === undefined || !TYPESCRIPT.test(path)) return nextLoad(url, context)
  const source = await readFile(path, 'utf8')
  const output = await transform(source, {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcefile: path,
    sourcemap: 'inline',
    sourcesContent: true,
    // The compiler options esbuild honours, as tsconfig.json sets them.
    tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true } },
  })
  return { format: 'module', source: output.code, shortCircuit: true }
}
