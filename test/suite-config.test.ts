import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'

/**
 * .taprc's `serial:` list names the files that run alone. A file moved or renamed without its entry
 * would quietly run beside others: every entry must name a test file that exists.
 */

const config = parse(readFileSync(new URL('../.taprc', import.meta.url), 'utf8')) as { serial?: string[] }

t.test('every serial entry in .taprc is an existing test file', async t => {
  const serial = config.serial ?? []
  t.ok(serial.length > 0, 'some files are serial')
  for (const path of serial) t.ok(path.endsWith('.test.ts') && existsSync(new URL(`../${path}`, import.meta.url)), path)
})
