import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { PROJECT_ROOT, runToExit } from '../process-helper.js'

/** scripts/check-folder-cycles.mjs, which `npm run lint` runs: it must fail on a cycle and pass without. */

const script = join(PROJECT_ROOT, 'scripts/check-folder-cycles.mjs')

function tree (files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'chat-token-cycles-'))
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true })
    writeFileSync(join(root, path), text)
  }
  return root
}

t.test('two folders importing each other (one of them only for a type) fail, naming both and the imports', async t => {
  const root = tree({
    'auth/session.ts': "import { client } from '../hubspot/client.js'\nexport const session = client\n",
    'hubspot/client.ts': "import type { Identity } from '../auth/identity.js'\nexport const client = 1\n",
    'auth/identity.ts': 'export interface Identity { email: string }\n'
  })
  const finished = await runToExit(process.execPath, [script, root])
  t.equal(finished.code, 1)
  t.match(finished.stderr, /import cycle between folders: auth ↔ hubspot/)
  t.match(finished.stderr, /auth\/session\.ts imports hubspot\/client\.ts/)
  t.match(finished.stderr, /hubspot\/client\.ts imports auth\/identity\.ts/)
})

t.test('a file directly in the root is its own node: everything may import it and it may import every folder', async t => {
  const root = tree({
    'app.ts': "import { session } from './auth/session.js'\nimport { client } from './hubspot/client.js'\nexport const app = [session, client]\n",
    'errors.ts': 'export class ServiceError extends Error {}\n',
    'auth/session.ts': "import { ServiceError } from '../errors.js'\nimport { client } from '../hubspot/client.js'\nexport const session = [ServiceError, client]\n",
    'hubspot/client.ts': "import { ServiceError } from '../errors.js'\nexport const client = await import('../errors.js').then(() => ServiceError)\n"
  })
  const finished = await runToExit(process.execPath, [script, root])
  t.equal(finished.code, 0, finished.stderr)
  t.match(finished.stdout, /auth\/ → errors\.ts, hubspot/)
  t.match(finished.stdout, /no folder-level import cycle/)
})

t.test('a dynamic import counts too', async t => {
  const root = tree({
    'redis/link.ts': "export const link = () => import('../tokens/store.js')\n",
    'tokens/store.ts': "import { link } from '../redis/link.js'\nexport const store = link\n"
  })
  const finished = await runToExit(process.execPath, [script, root])
  t.equal(finished.code, 1)
  t.match(finished.stderr, /redis ↔ tokens/)
})

t.test('this project\'s own src/ has none', async t => {
  const finished = await runToExit(process.execPath, [script], { cwd: PROJECT_ROOT })
  t.equal(finished.code, 0, finished.stderr)
})
