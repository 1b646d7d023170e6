import type { Env } from '../../src/config/types.js'
import { baseEnv } from '../helper.js'
import { SHARED_REDIS_URL } from '../redis-helper.js'

/**
 * The service's environment for the Redis budget's tests: the shared Redis, no per-caller limit to
 * speak of, and no load shedding, which a busy test machine could trigger while the budget is under test.
 */
export function redisBudgetEnv (emulator: { url: string }, overrides: Env = {}): Env {
  return baseEnv(emulator as never, {
    REDIS_URL: SHARED_REDIS_URL,
    RATE_LIMIT_MAX: '100000',
    MAX_EVENT_LOOP_DELAY_MS: '0',
    ...overrides
  })
}
