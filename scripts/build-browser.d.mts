/** Types for build-browser.mjs, imported by the tests and the demo. */
export type BrowserHelperFiles = Record<'chat-identity.js' | 'chat-identity.mjs', string>
export function buildBrowserHelper (options?: { outdir?: string }): Promise<BrowserHelperFiles>
