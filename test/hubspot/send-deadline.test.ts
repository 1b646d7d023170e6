import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import t from 'tap'
import type { Dispatcher } from 'undici'
import { type SendByOption, SendGuardedPool, SendWindowMissedError } from '../../src/hubspot/send-deadline.js'
import { ACCESS_TOKEN, manualClock, startEmulator } from '../helper.js'

/** The last-moment check on a request's send-by time, against the emulator over a real pool. */

const path = '/conversations/v3/visitor-identification/tokens/create'

t.test('a request past its send-by time is not sent, and the connection stays open for the next', async t => {
  const emulator = await startEmulator(t)
  const clock = manualClock(1000)
  const pool = new SendGuardedPool(emulator.url, { connections: 1 }, clock)
  t.teardown(() => pool.close())
  let connects = 0
  const countConnect = (): void => { connects++ }
  subscribe('undici:client:connected', countConnect)
  t.teardown(() => unsubscribe('undici:client:connected', countConnect))
  const send = async (sendBy: number | undefined): Promise<number> => {
    const options: Dispatcher.RequestOptions & SendByOption = {
      path,
      method: 'POST',
      headers: { authorization: `Bearer ${ACCESS_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'ada@example.com' }),
      sendBy
    }
    const response = await pool.request(options)
    await response.body.dump()
    return response.statusCode
  }

  t.equal(await send(1000), 200, 'on time (the send-by moment itself): sent')
  t.equal(await send(undefined), 200, 'no send-by: sent')
  t.equal(emulator.calls().length, 2)
  const late = await send(999).catch((error: unknown) => error)
  t.ok(late instanceof SendWindowMissedError, 'one millisecond late: refused')
  t.equal(emulator.calls().length, 2, 'and HubSpot never saw it')
  t.equal(await send(2000), 200)
  t.equal(emulator.calls().length, 3)
  t.equal(connects, 1, 'all on the one connection: the held-back request did not close it')
})
