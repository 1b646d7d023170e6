import { hostname } from 'node:os'
import type { DestinationStream } from 'pino'

/** What the one line per request says. None of it can hold a secret; `user` is the email's keyed hash. */
export interface AccessLine {
  reqId: string
  method: string
  /** The path without its query string. */
  path: string
  status: number
  ms: number
  /** The problem code of an error answer. */
  code: string | undefined
  user: string | undefined
}

/** pino's number for `info`, the level of the access line. */
const INFO = 30

/**
 * Writes the access line in exactly the shape pino writes its own lines (level, time, pid, hostname,
 * the fields, msg), so log pipelines see one format. It is built by hand: the fields are fixed and
 * typed, so pino's generic serialisation (a walk over an object, a check of every key) buys nothing on
 * the one line every request pays for. Strings go through JSON.stringify, so a hostile path or request
 * id is escaped like any other JSON string.
 */
export function createAccessLog (enabled: boolean, destination: DestinationStream, now: () => number = Date.now): (line: AccessLine) => void {
  if (!enabled) return () => {}
  const head = `{"level":${INFO},"time":`
  const base = `,"pid":${process.pid},"hostname":${JSON.stringify(hostname())},"reqId":`
  return line => {
    let text = head + now() + base + JSON.stringify(line.reqId) +
      ',"method":' + JSON.stringify(line.method) +
      ',"path":' + JSON.stringify(line.path) +
      ',"status":' + line.status +
      ',"ms":' + line.ms
    if (line.code !== undefined) text += ',"code":' + JSON.stringify(line.code)
    if (line.user !== undefined) text += ',"user":' + JSON.stringify(line.user)
    destination.write(text + ',"msg":"request"}\n')
  }
}
