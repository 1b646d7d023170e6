import { truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { watchFile } from '../../src/secrets/watched-file.js'
import { until } from '../helper.js'
import { kubernetesSecret, replaceFile, secretDir } from './secret-files.js'

/** The file watch behind rotating secrets, on real files: what it notices, and what it reports. */

function watching (t: { teardown: (fn: () => unknown) => void }, path: string, initial: string, options: { checkIntervalMs?: number; watchDirectory?: boolean } = {}): { seen: string[]; errors: string[]; check: () => Promise<void> } {
  const seen: string[] = []
  const errors: string[] = []
  const watch = watchFile({
    path,
    initial,
    onContent: text => seen.push(text),
    onReadError: error => errors.push(error.code ?? 'error'),
    checkIntervalMs: options.checkIntervalMs ?? 60_000,
    watchDirectory: options.watchDirectory
  })
  t.teardown(watch.close)
  return { seen, errors, check: watch.check }
}

t.test('a Kubernetes secret update (the ..data symlink swapped) is noticed by the directory watch', async t => {
  const secret = kubernetesSecret(t, 'token', 'first\n')
  const watch = watching(t, secret.path, 'first')
  secret.update('second\n')
  await until('the new content is reported', () => watch.seen.length === 1)
  t.same(watch.seen, ['second'], 'trimmed, once')
  secret.update('third')
  await until('the next one too', () => watch.seen.length === 2)
  t.same(watch.seen, ['second', 'third'])
})

t.test('a file renamed into place is noticed; rewriting the same text reports nothing', async t => {
  const dir = secretDir(t)
  const path = join(dir, 'token')
  writeFileSync(path, 'first')
  const watch = watching(t, path, 'first')
  replaceFile(path, 'first\n')
  replaceFile(path, 'second')
  await until('the change is reported', () => watch.seen.length === 1)
  await watch.check()
  t.same(watch.seen, ['second'])
})

t.test('without the directory watch, the periodic stat finds the change', async t => {
  const dir = secretDir(t)
  const path = join(dir, 'token')
  writeFileSync(path, 'first')
  const watch = watching(t, path, 'first', { checkIntervalMs: 50, watchDirectory: false })
  replaceFile(path, 'second')
  await until('the periodic check reports it', () => watch.seen.length === 1)
  t.same(watch.seen, ['second'])
})

t.test('check() reads at once (SIGHUP), with no watch and no periodic check due', async t => {
  const dir = secretDir(t)
  const path = join(dir, 'token')
  writeFileSync(path, 'first')
  const watch = watching(t, path, 'first', { watchDirectory: false })
  writeFileSync(path, 'second')
  await watch.check()
  t.same(watch.seen, ['second'])
})

t.test('a file written in place in two steps is read once the writer is done', async t => {
  const dir = secretDir(t)
  const path = join(dir, 'token')
  writeFileSync(path, 'first')
  const watch = watching(t, path, 'first')
  truncateSync(path)
  writeFileSync(path, 'second-value')
  await until('the change is reported', () => watch.seen.length > 0)
  t.same(watch.seen, ['second-value'], 'the empty moment in between was never read')
})

t.test('a file that vanishes is reported once, and its return is read', async t => {
  const dir = secretDir(t)
  const path = join(dir, 'token')
  writeFileSync(path, 'first')
  const watch = watching(t, path, 'first', { watchDirectory: false })
  unlinkSync(path)
  await watch.check()
  await watch.check()
  t.same(watch.errors, ['ENOENT'], 'one report for as long as it stays away')
  writeFileSync(path, 'back')
  await watch.check()
  t.same(watch.seen, ['back'])
})
