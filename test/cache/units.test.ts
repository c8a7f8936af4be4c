import t from 'tap'
import { CircuitBreaker, createCache, MemoryStore, type Store } from '@visitme/memcache'
import { decode, encode, UncacheableValueError } from '../../packages/memcache/src/codec.js'
import { memcacheTtlMs, ttlMs } from '../../packages/memcache/src/ttl.js'
import { capturingLogger } from '../helpers/app.js'

t.test('codec: tags cannot be forged by caller data', async (t) => {
  const tricky = { $date: 5, $buffer: 'aGk=', $$x: 1, plain: { $date: 'not a date' } }
  t.same(decode(encode(tricky)), tricky)
  t.same(decode(encode([new Date(0), { at: new Date(1) }])), [new Date(0), { at: new Date(1) }])
  t.throws(() => encode(undefined), UncacheableValueError)
  t.equal(encode(5), '5', 'a number is bare decimal, so Redis can increment it')
  t.equal(encode(5n), '5n', 'a bigint is bare decimal too, marked as a bigint')
  t.equal(encode(2n ** 53n + 1n), '9007199254740993n')
  t.equal(encode(2 ** 60), '{"$number":"1152921504606847000"}', 'a number past 2^53 is not taken for a counter')
  t.equal(decode(encode(2 ** 60)), 2 ** 60)
  t.equal(decode('18446744073709551616'), 2n ** 64n, 'a counter past 2^53 comes back exact')
  t.equal(decode('9007199254740991'), Number.MAX_SAFE_INTEGER)
})

t.test('ttl follows memcache: 0 forever, up to 30 days relative, beyond an absolute time', async (t) => {
  const now = 1_800_000_000_000
  t.equal(ttlMs(0, now), 0)
  t.equal(ttlMs(3600, now), 3_600_000)
  t.equal(ttlMs(1.2, now), 1200)
  t.equal(ttlMs(30 * 24 * 3600, now), 30 * 24 * 3600 * 1000)
  t.equal(ttlMs(now / 1000 + 60, now), 60_000)
  t.equal(ttlMs(now / 1000 - 1, now), -1, 'a time in the past: written and gone at once')
  t.throws(() => ttlMs(-5, now), RangeError)
  t.throws(() => ttlMs(Number.NaN, now), RangeError)
  t.throws(() => ttlMs('5' as unknown as number, now), TypeError)
})

t.test('memcache TTLs round fractional seconds up to whole ones, as App Engine does', async (t) => {
  const now = 1_800_000_000_000
  t.equal(memcacheTtlMs(0.5, now), 1000)
  t.equal(memcacheTtlMs(1.2, now), 2000)
  t.equal(memcacheTtlMs(3, now), 3000)
  t.equal(memcacheTtlMs(now / 1000 + 59.5, now), 60_000, 'an absolute time too')
  t.throws(() => memcacheTtlMs(-0.5, now), RangeError, 'a negative fraction is refused, not rounded to 0')
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
  const fail = () => { if (broken) throw new Error('ECONNRESET') }
  const store: Store = {
    kind: 'redis',
    connected: true,
    get: async (keys) => { fail(); return keys.map(() => '"v"') },
    getOne: async () => { fail(); return '"v"' },
    gets: async (keys) => { fail(); return keys.map(() => ({ value: '"v"', casToken: 't' })) },
    peek: async (keys) => { fail(); return keys.map(() => ({ value: '"v"', expiresAtMs: 0, lastAccessMs: 0, lockedUntilMs: 0 })) },
    write: async (_mode, entries) => { fail(); return entries.map(() => true) },
    cas: async () => { fail(); return true },
    delete: async (keys) => { fail(); return keys.map(() => true) },
    incr: async () => { fail(); return '1' },
    flush: async () => { fail() },
    pttl: async () => { fail(); return -1 },
    addCounters: async () => { fail() },
    readCounters: async () => { fail(); return {} },
    census: async () => { fail(); return { items: 0, bytes: 0, oldestItemAge: 0, complete: true } },
    listGet: async () => { fail(); return undefined },
    listBegin: async () => { fail(); return { items: [], reserved: { count: 0, newestSettled: false }, building: true, version: 1, ttlMs: 1, began: true } },
    listAdd: async () => { fail(); return undefined },
    listReserve: async () => { fail(); return undefined },
    listRelease: async () => { fail(); return undefined },
    publish: async () => { fail() },
    subscribe: () => ({ live: false, close: async () => {} })
  }
  let now = 0
  const { logger, lines } = capturingLogger()
  const cache = createCache({ store, logger, breaker: new CircuitBreaker({ threshold: 3, resetMs: 1000, now: () => now }) })
  t.same(await cache.lookup('k'), { status: 'unavailable' })
  t.equal(await cache.set('k', 1), false)
  t.equal(await cache.incr('k'), undefined)
  for (let i = 0; i < 5; i++) t.same(await cache.lookup('k'), { status: 'unavailable' })
  t.equal(await cache.delete('k'), 'failed')
  t.same(await cache.setMulti({ a: 1, b: 2 }), ['a', 'b'], 'a failed batch stores nothing')
  t.same(await cache.getMulti(['a']), {})
  t.equal(await cache.deleteMulti(['a']), false)
  t.equal(await cache.cas('k', 1, 't'), false)
  t.equal(await cache.flushAll(), false)
  let runs = 0
  const memoized = cache.memoize(async function answer () { runs++; return 42 }, { ttl: 60 })
  t.equal(await memoized(), 42, 'a memoized function still answers while the cache is down')
  t.equal(await memoized(), 42)
  t.equal(runs, 2, 'and runs every time')
  t.equal(cache.counters().errors, 3, 'only three calls reached the store; the open circuit stopped the rest')
  t.equal(cache.available, false)
  broken = false
  now += 1000
  t.same(await cache.lookup('k'), { status: 'hit', value: 'v' })
  t.equal(cache.available, true)
  const messages = lines().filter((l) => (l.level as number) >= 30).map((l) => l.message)
  t.same(messages, ['cache failing; circuit open, serving without it', 'cache answering again; circuit closed'])
})

t.test('a disconnected store is not called at all', async (t) => {
  const store = new MemoryStore()
  Object.defineProperty(store, 'connected', { value: false })
  const cache = createCache({ store })
  t.same(await cache.lookup('k'), { status: 'unavailable' })
  t.equal(await cache.set('k', 1), false)
  t.equal(store.bytes, 0, 'nothing was written')
})

t.test('views: namespaced() shares the store, breaker and counters; a refused namespace leaves no trace', async (t) => {
  const cache = createCache({ store: new MemoryStore(), namespace: 'a' })
  const view = cache.namespaced('b', { reads: 'replica' })
  t.equal(view.namespace, 'b')
  t.equal(view.reads, 'replica')
  view.recordHit()
  t.equal(cache.counters('b').hits, 1, 'one set of counters for every view')
  t.throws(() => cache.namespaced(5 as unknown as string), TypeError)
  const other = createCache({ store: new MemoryStore(), namespace: 'c' })
  t.equal(other.reads, 'primary', 'the next cache made is a cache of its own')
  t.same(other.namespaces(), [], 'with counters of its own')
})
