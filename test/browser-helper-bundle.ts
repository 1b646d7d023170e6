import { rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildBrowserHelper, type BrowserHelperFiles } from '../scripts/build-browser.mjs'

/**
 * The browser helper bundled from the current source, once per test process, into a temporary folder
 * (never dist/, which may be stale or belong to a concurrent build). Removed when the process exits.
 */
let bundled: Promise<{ dir: string; files: BrowserHelperFiles }> | undefined

export function browserHelperBundle (): Promise<{ dir: string; files: BrowserHelperFiles }> {
  bundled ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chat-identity-'))
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
    return { dir, files: await buildBrowserHelper({ outdir: dir }) }
  })()
  return bundled
}
