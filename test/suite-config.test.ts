import { existsSync, readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'

/**
 * .taprc's `serial:` list names the files that measure time. A file moved or renamed without its entry
 * would quietly run beside others: every entry must name a test file that exists.
 */

const config = parse(readFileSync(new URL('../.taprc', import.meta.url), 'utf8')) as { serial?: string[] }

t.test('every serial entry in .taprc is an existing test file', async t => {
  const serial = config.serial ?? []
  t.ok(serial.length > 0, 'some files are serial')
  for (const path of serial) t.ok(path.endsWith('.test.ts') && existsSync(new URL(`../${path}`, import.meta.url)), path)
})

t.test('no test file awaits its own tests at its top level: in a batch, tests start once every file is loaded', async t => {
  const testDir = new URL('./', import.meta.url)
  const files = readdirSync(testDir, { recursive: true }).map(String).filter(file => file.endsWith('.test.ts'))
  t.ok(files.length > 50, `${files.length} test files read`)
  const awaiting = files.filter(file => /^await t\./m.test(readFileSync(new URL(file, testDir), 'utf8')))
  t.same(awaiting, [], 'files with a top-level `await t.…`')
})
