import { readFile } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import { sendJson } from './http-io.js'
import { CONTROL_PREFIX } from './routes.js'

export const WIDGET_PATH = `${CONTROL_PREFIX}/widget.js`
const WIDGET_FILE = new URL('./widget/widget.js', import.meta.url)

/** The stand-in chat widget; read on every request so edits show on reload. */
export async function sendWidgetScript (res: ServerResponse, method: string | undefined): Promise<void> {
  if (method !== 'GET' && method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD')
    sendJson(res, 405, { error: 'method_not_allowed', message: `use GET for ${WIDGET_PATH}` })
    return
  }
  const body = await readFile(WIDGET_FILE)
  res.writeHead(200, {
    'Content-Type': 'text/javascript; charset=utf-8',
    'Content-Length': String(body.length),
    'Cache-Control': 'no-cache'
  })
  res.end(method === 'HEAD' ? undefined : body)
}
