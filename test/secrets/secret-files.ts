import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Secret files as they are really updated: written whole and renamed into place, or swapped as Kubernetes does. */

type Teardown = { teardown: (fn: () => unknown) => void }

export function secretDir (t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'chat-token-secrets-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

let written = 0

/** Writes `text` beside `path`, then renames it over `path` (no reader ever sees half a file). */
export function replaceFile (path: string, text: string): void {
  const next = `${path}.${process.pid}.${written++}.tmp`
  writeFileSync(next, text)
  renameSync(next, path)
}

/**
 * A Kubernetes secret volume: `<dir>/<name>` → `..data/<name>`, `..data` → a timestamped directory.
 * `update` writes a new timestamped directory and swaps the `..data` symlink atomically, as the kubelet does.
 */
export function kubernetesSecret (t: Teardown, name: string, text: string): { path: string; update: (text: string) => void } {
  const dir = secretDir(t)
  let version = 0
  const publish = (content: string): void => {
    const versionDir = `..v${version++}`
    mkdirSync(join(dir, versionDir))
    writeFileSync(join(dir, versionDir, name), content)
    symlinkSync(versionDir, join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  }
  publish(text)
  symlinkSync(join('..data', name), join(dir, name))
  return { path: join(dir, name), update: publish }
}
