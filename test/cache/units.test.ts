import t from 'tap'
import { CircuitBreaker, createCache, type Store } from '../../src/cache/index.js'
import { decode, encode } from '../../src/cache/codec.js'
import { ttlSeconds } from '../../src/cache/ttl.js'
import { capturingLogger } from '../helper.js'

t.test('codec: tags cannot be forged by caller data', async (t) => {
  const tricky = { $date: 5, $buffer: 'aGk=', $$x: 1, plain: { $date: 'not a date' } }
  t.same(decode(encode(tricky)), tricky)
  t.same(decode(encode([new Date(0), { at: new Date(1) }])), [new Date(0), { at: new Date(1) }])
  t.throws(() => encode(undefined), TypeError)
})

t.test('ttl follows memcache: 0 forever, up to 30 days relative, beyond an absolute time', async (t) => {
  const now = 1_800_000_000_000
  t.equal(ttlSeconds(0, now), 0)
  t.equal(ttlSeconds(3600, now), 3600)
  t.equal(ttlSeconds(1.2, now), 2, 'fractions round up')
  t.equal(ttlSeconds(30 * 24 * 3600, now), 30 * 24 * 3600)
  t.equal(ttlSeconds(now / 1000 + 60, now), 60)
  t.equal(ttlSeconds(now / 1000 - 1, now), -1, 'a time in the past is already expired')
  t.throws(() => ttlSeconds(-5, now), RangeError)
  t.throws(() => ttlSeconds(Number.NaN, now), RangeError)
})

t.test('breaker: opens after the threshold, probes once after the reset time', async (t) => {
  let now = 0
  const breaker = new CircuitBreaker({ threshold: 2, resetMs: 1000, now: () => now })
  t.equal(breaker.allow(), true)
  breaker.failure()
  t.equal(breaker.state, 'closed')
  breaker.failure()
  t.equal(breaker.state, 'open')
  t.equal(breaker.allow(), false)
  now += 1000
  t.equal(breaker.allow(), true, 'one probe')
  t.equal(breaker.state, 'half-open')
  t.equal(breaker.allow(), false, 'only one')
  breaker.failure()
  t.equal(breaker.state, 'open', 'a failed probe opens it again')
  now += 1000
  t.equal(breaker.allow(), true)
  breaker.success()
  t.equal(breaker.state, 'closed')
  t.equal(breaker.allow(), true)
})

t.test('breaker: a probe that never reports back does not block the circuit forever', async (t) => {
  let now = 0
  const breaker = new CircuitBreaker({ threshold: 1, resetMs: 1000, now: () => now })
  breaker.failure()
  now += 1000
  t.equal(breaker.allow(), true, 'a probe goes out and is lost')
  now += 999
  t.equal(breaker.allow(), false)
  now += 1
  t.equal(breaker.allow(), true, 'another probe after the reset time')
})

t.test('the facade fails open and logs once per state change', async (t) => {
  let broken = true
  const store: Store = {
    kind: 'redis',
    connected: true,
    get: async () => { if (broken) throw new Error('ECONNRESET'); return '"v"' },
    set: async () => { if (broken) throw new Error('ECONNRESET') },
    delete: async () => { if (broken) throw new Error('ECONNRESET'); return true }
  }
  let now = 0
  const { logger, lines } = capturingLogger()
  const cache = createCache({ store, logger, breaker: new CircuitBreaker({ threshold: 3, resetMs: 1000, now: () => now }) })
  for (let i = 0; i < 10; i++) t.same(await cache.lookup('k'), { status: 'unavailable' })
  t.equal(await cache.set('k', 1), false)
  t.equal(await cache.delete('k'), 'failed')
  t.equal(cache.counters.errors, 3, 'only three calls reached the store; the open circuit stopped the rest')
  t.equal(cache.available, false)
  broken = false
  now += 1000
  t.same(await cache.lookup('k'), { status: 'hit', value: 'v' })
  t.equal(cache.available, true)
  const messages = lines().filter((l) => (l.level as number) >= 30).map((l) => l.message)
  t.same(messages, ['cache failing; circuit open, serving without it', 'cache answering again; circuit closed'])
})

t.test('a disconnected store is not called at all', async (t) => {
  let calls = 0
  const store: Store = {
    kind: 'redis',
    connected: false,
    get: async () => { calls++; return undefined },
    set: async () => { calls++ },
    delete: async () => { calls++; return false }
  }
  const cache = createCache({ store })
  t.same(await cache.lookup('k'), { status: 'unavailable' })
  t.equal(await cache.set('k', 1), false)
  t.equal(calls, 0)
})
