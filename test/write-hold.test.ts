/**
 * Unit tests of src/write-hold.ts (pure logic: the master is a value, the topology a flag).
 * The failover suites check the same rule against real sentinels (test/failover.test.ts).
 */
import t from 'tap'
import { GatewayError } from '../src/errors.js'
import { holdUntilWritable, sendReserveMs } from '../src/write-hold.js'

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

function hold (readyAt: number, deadline: number, reserveMs: number): Promise<string> {
  return holdUntilWritable({
    deadline,
    reserveMs,
    pollMs: 10,
    ready: () => Date.now() >= readyAt ? 'master' : null,
    refusal: late => late ? 'late' : 'held',
    poll: sleep
  })
}

t.test('a master ready at once is returned whatever the budget left', async t => {
  t.equal(await hold(0, Date.now() + 5, 1000), 'master')
})

t.test('a held write is released once the master is ready, while the reserve is still left', async t => {
  const start = Date.now()
  t.equal(await hold(start + 50, start + 1000, 200), 'master')
  t.ok(Date.now() - start >= 50, 'it waited for the master')
})

t.test('ready only inside the reserve: 503, nothing sent', async t => {
  const start = Date.now()
  const err = await hold(start + 150, start + 200, 100).catch((e: unknown) => e)
  t.type(err, GatewayError)
  t.equal((err as GatewayError).code, 'GW_ERR_REDIS_UNAVAILABLE')
  t.ok(Date.now() - start < 200, 'answered when the reserve began, not at the deadline')
})

t.test('never ready: 503 with the reason it was held', async t => {
  const err = await hold(Infinity, Date.now() + 100, 50).catch((e: unknown) => e) as GatewayError
  t.equal(err.message, 'held')
})

t.test('ready only once the reserve began: 503 saying the budget was too short', async t => {
  // First check: not ready; the one wait lasts until the reserve begins; then ready, too late.
  // Ready from the second check on (by count, not by clock: a loaded machine may reach the first
  // check after any time bound, and it would then be ready at once and send).
  const start = Date.now()
  let checks = 0
  const err = await holdUntilWritable({
    deadline: start + 200,
    reserveMs: 100,
    pollMs: 1000,
    ready: () => ++checks > 1 ? 'master' : null,
    refusal: late => late ? 'late' : 'held',
    poll: sleep
  }).catch((e: unknown) => e) as GatewayError
  t.equal(err.message, 'late')
})

t.test('the reserve is one WAIT, at most half the budget', async t => {
  t.equal(sendReserveMs({ waitTimeoutMs: 500, retryBudgetMs: 5000 }), 500)
  t.equal(sendReserveMs({ waitTimeoutMs: 500, retryBudgetMs: 600 }), 300)
  t.equal(sendReserveMs({ waitTimeoutMs: 500, retryBudgetMs: 0 }), 0)
})
