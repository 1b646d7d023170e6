import { fileURLToPath } from 'node:url'
import { buildBrowserHelper } from '../scripts/build-browser.mjs'

/**
 * `npm run dev`: bundles the browser helper into dist/public, where src/server.ts serves it from, then
 * runs the service from source. tsx watch reruns this file on any change to the service or to
 * src/browser, so /chat-identity.js is always the current source.
 */
await buildBrowserHelper({ outdir: fileURLToPath(new URL('../dist/public', import.meta.url)) })
await import('../src/server.js')
