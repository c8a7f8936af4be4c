import t from 'tap'
import { createCache, MemoryStore, RedisStore, type CacheStore } from '@visitme/memcache'
import { redisReady, testRedis } from '../helpers/services.js'
import { countersContract, keyValueContract, memoizeContract, storeContract } from '@visitme/memcache/contract'

storeContract(t, 'memory', {
  make: async () => new MemoryStore(),
  // One process's memory: a second instance of the service cannot share it; a second cache can.
  peer: async (_t, store) => store
})

storeContract(t, 'redis', {
  make: async (t) => new RedisStore(await redisReady(testRedis(t))),
  peer: async (t) => new RedisStore(await redisReady(testRedis(t)))
})

/** A store that offers only what the memcache API needs: values and counters, no lists, no announcements. */
function valuesOnly (store: MemoryStore): CacheStore {
  const { kind } = store
  const names = ['get', 'getOne', 'gets', 'peek', 'write', 'cas', 'delete', 'flush', 'pttl', 'census', 'incr', 'addCounters', 'readCounters'] as const
  return Object.assign({ kind, get connected () { return store.connected } }, ...names.map((name) => ({ [name]: store[name].bind(store) }))) as CacheStore
}

const valuesOnlyFactory = { make: async () => valuesOnly(new MemoryStore()), peer: async (_t: unknown, store: CacheStore) => store }
keyValueContract(t, 'values-only', valuesOnlyFactory)
countersContract(t, 'values-only', valuesOnlyFactory)
memoizeContract(t, 'values-only', valuesOnlyFactory)

t.test('a store without lists: list calls throw a clear TypeError, and the store stays in use', async (t) => {
  const cache = createCache({ store: valuesOnly(new MemoryStore()) })
  await t.rejects(cache.listGet('l'), { name: 'TypeError', message: /keeps no lists/ })
  await t.rejects(cache.announce('l'), TypeError)
  t.throws(() => cache.subscribe('l', { message () {}, reset () {} }), TypeError)
  for (let i = 0; i < 5; i++) await t.rejects(cache.listBegin('l', { lockSeconds: 5 }), TypeError)
  t.equal(cache.available, true, 'misuse never opens the circuit')
  t.equal(cache.counters().errors, 0)
  t.equal(await cache.set('k', 1), true)
})

const entry = (key: string, value: string, ttlMs = 0) => ({ key, value, casToken: 't', ttlMs })

t.test('the memory store evicts the least recently used entries beyond its byte bound', async (t) => {
  const store = new MemoryStore({ maxBytes: 30 })
  await store.write('set', [entry('a', '123456'), entry('b', '123456'), entry('c', '123456')]) // 8 bytes each
  t.equal(store.bytes, 24)
  await store.get(['a']) // a is now the most recently used
  await store.write('set', [entry('d', '123456')])
  t.same((await store.get(['a', 'b', 'd'])), ['123456', undefined, '123456'], 'b, the least recently used, is gone')
  t.ok(store.bytes <= 30)
  t.same(await store.write('set', [entry('huge', 'x'.repeat(100))]), [false], 'a value larger than the whole bound is not kept')
  t.equal((await store.get(['a']))[0], '123456', 'and does not flush the rest')
})

t.test('the memory store evicts the least recently used: a read moves an entry up, a peek does not', async (t) => {
  const store = new MemoryStore({ maxBytes: 30 })
  await store.write('set', [entry('a', '123456'), entry('b', '123456'), entry('c', '123456')]) // 8 bytes each
  await store.peek(['a'])
  await store.get(['b'])
  await store.write('set', [entry('d', '123456')])
  t.same((await store.get(['a', 'b', 'c', 'd'])), [undefined, '123456', '123456', '123456'], 'a, only peeked, went first')
})

t.test('the memory store expires by its clock', async (t) => {
  let now = 1_000_000
  const store = new MemoryStore({ now: () => now })
  await store.write('set', [entry('k', 'v', 10_000), entry('forever', 'v')])
  now += 9_999
  t.equal((await store.get(['k']))[0], 'v')
  t.equal(await store.pttl('k'), 1)
  now += 1
  t.equal((await store.get(['k']))[0], undefined)
  t.equal(await store.pttl('k'), -2)
  t.equal(await store.pttl('forever'), -1)
  now += 1e12
  t.equal((await store.get(['forever']))[0], 'v')
})

t.test('the redis store keeps the TTL on the key itself', async (t) => {
  const redis = await redisReady(testRedis(t))
  const store = new RedisStore(redis)
  const key = `ttl-check-${process.pid}-${Date.now()}`
  t.teardown(async () => { await redis.del(key) })
  await store.write('set', [entry(key, 'v', 3_600_000)])
  const ttl = await store.pttl(key)
  t.ok(ttl > 3_590_000 && ttl <= 3_600_000, `PTTL ${ttl}`)
  await store.write('set', [entry(key, 'v')])
  t.equal(await store.pttl(key), -1, 'ttl 0 keeps the key without expiry')
})
