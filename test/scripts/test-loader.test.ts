import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
// @ts-expect-error: a plain ES module of the tooling, without type declarations
import { load, resolve } from '../../scripts/test-loader/hooks.mjs'

/** The hooks tap's test processes load TypeScript through, called directly. */

type LoadResult = { format: string; source: string; shortCircuit?: boolean }
type Next = (url: string, context: object) => Promise<unknown>
const loadHook = load as (url: string, context: object, next: Next) => Promise<LoadResult>
const resolveHook = resolve as (specifier: string, context: object, next: Next) => Promise<unknown>

const SOURCE = [
  'import type { Server } from \'node:http\'',
  '',
  '/** Three statements, one per line. */',
  'export const first: number = 1',
  'export const second = (server?: Server): string => String(server ?? first)',
  'export enum Third { A = 1 }',
  ''
].join('\n')

function folder (): string {
  return mkdtempSync(join(tmpdir(), 'chat-token-test-loader-'))
}

function decodedSourceMap (code: string): { sources: string[]; sourcesContent: string[] } {
  const match = /\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/.exec(code)
  if (match === null) throw new Error('no inline source map')
  return JSON.parse(Buffer.from(match[1]!, 'base64').toString('utf8')) as { sources: string[]; sourcesContent: string[] }
}

const refuse: Next = async url => { throw new Error(`next hook called for ${url}`) }

t.test('a .ts module becomes an ES module, a statement to a line, with its original text in a source map', async t => {
  const path = join(folder(), 'three.ts')
  writeFileSync(path, SOURCE)
  const result = await loadHook(pathToFileURL(path).href, {}, refuse)
  t.equal(result.format, 'module')
  t.equal(result.shortCircuit, true)
  const code = result.source.replace(/\/\/# sourceMappingURL=.*$/s, '')
  t.notMatch(code, /import type|: number|: string/, 'types are gone')
  t.match(code, /^const first = 1;$/m)
  t.match(code, /^const second = \(server\) => /m)
  t.ok(code.trim().split('\n').length >= 3, 'not printed on one line')
  const map = decodedSourceMap(result.source)
  t.same(map.sourcesContent, [SOURCE])
  const imported = await import(`data:text/javascript,${encodeURIComponent(result.source)}`) as Record<string, unknown>
  t.equal(imported.first, 1)
  t.equal((imported.second as () => string)(), '1')
  t.same(imported.Third, { 1: 'A', A: 1 })
})

t.test('a changed source is transpiled again, not served from the cache', async t => {
  const path = join(folder(), 'changing.ts')
  const url = pathToFileURL(path).href
  for (const value of [1, 2, 1]) {
    writeFileSync(path, `export const value: number = ${value}\n`)
    const { source } = await loadHook(url, {}, refuse)
    t.match(source, new RegExp(`^const value = ${value};$`, 'm'), `value ${value}`)
    t.same(decodedSourceMap(source).sourcesContent, [`export const value: number = ${value}\n`])
  }
})

t.test('anything but .ts goes to the next loader untouched', async t => {
  const seen: string[] = []
  const next: Next = async url => { seen.push(url); return { format: 'module', source: '' } }
  for (const url of ['file:///x/module.js', 'file:///x/module.mjs', 'node:fs', 'data:text/javascript,1', 'file:///x/file.ts.js']) {
    await loadHook(url, {}, next)
  }
  t.same(seen, ['file:///x/module.js', 'file:///x/module.mjs', 'node:fs', 'data:text/javascript,1', 'file:///x/file.ts.js'])
})

t.test('`./file.js` means `./file.ts` only when no such .js file exists', async t => {
  const parentURL = pathToFileURL(join(folder(), 'importer.ts')).href
  const missing = Object.assign(new Error('not found'), { code: 'ERR_MODULE_NOT_FOUND' })
  const asked: string[] = []
  const next = (exists: (specifier: string) => boolean): Next => async specifier => {
    asked.push(specifier)
    if (!exists(specifier)) throw missing
    return { url: specifier }
  }
  t.same(await resolveHook('./found.js', { parentURL }, next(() => true)), { url: './found.js' })
  t.same(await resolveHook('./source.js', { parentURL }, next(specifier => specifier.endsWith('.ts'))), { url: './source.ts' })
  t.same(await resolveHook('../up/source.js', { parentURL }, next(specifier => specifier.endsWith('.ts'))), { url: '../up/source.ts' })
  t.same(asked, ['./found.js', './source.js', './source.ts', '../up/source.js', '../up/source.ts'])
  for (const specifier of ['package-name.js', '@scope/name.js', './data.json', './other.mjs']) {
    await t.rejects(resolveHook(specifier, { parentURL }, next(() => false)), missing, `${specifier} is not rewritten`)
  }
  const other = Object.assign(new Error('bad'), { code: 'ERR_INVALID_MODULE_SPECIFIER' })
  await t.rejects(resolveHook('./bad.js', { parentURL }, async () => { throw other }), other, 'other errors are not retried')
})
