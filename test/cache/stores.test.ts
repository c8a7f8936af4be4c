import t from 'tap'
import { MemoryStore, RedisStore } from '../../src/cache/index.js'
import { redisReady, testRedis } from '../helper.js'
import { storeContract } from './store-contract.js'

storeContract(t, 'memory', async () => new MemoryStore())
storeContract(t, 'redis', async (t) => new RedisStore(await redisReady(testRedis(t))))

t.test('the memory store evicts the least recently used entries beyond its byte bound', async (t) => {
  const store = new MemoryStore({ maxBytes: 30 })
  await store.set('a', '1234567', 0) // 8 bytes
  await store.set('b', '1234567', 0)
  await store.set('c', '1234567', 0)
  t.equal(store.bytes, 24)
  await store.get('a') // a is now the most recently used
  await store.set('d', '1234567', 0)
  t.equal(await store.get('b'), undefined, 'b, the least recently used, is gone')
  t.equal(await store.get('a'), '1234567')
  t.equal(await store.get('d'), '1234567')
  t.ok(store.bytes <= 30)
  await store.set('huge', 'x'.repeat(100), 0)
  t.equal(await store.get('huge'), undefined, 'a value larger than the whole bound is not kept')
  t.equal(await store.get('a'), '1234567', 'and does not flush the rest')
})

t.test('the memory store expires by its clock', async (t) => {
  let now = 1_000_000
  const store = new MemoryStore({ now: () => now })
  await store.set('k', 'v', 10)
  now += 9_999
  t.equal(await store.get('k'), 'v')
  now += 1
  t.equal(await store.get('k'), undefined)
  t.equal(store.bytes, 0, 'an expired entry frees its bytes when found')
  await store.set('forever', 'v', 0)
  now += 1e12
  t.equal(await store.get('forever'), 'v')
})

t.test('the redis store sets the TTL on the key itself', async (t) => {
  const redis = await redisReady(testRedis(t))
  const store = new RedisStore(redis)
  const key = `ttl-check-${process.pid}-${Date.now()}`
  t.teardown(async () => { await redis.del(key) })
  await store.set(key, 'v', 3600)
  const ttl = await redis.pttl(key)
  t.ok(ttl > 3_590_000 && ttl <= 3_600_000, `PTTL ${ttl}`)
  await store.set(key, 'v', 0)
  t.equal(await redis.pttl(key), -1, 'ttl 0 keeps the key without expiry')
})

t.test('the memory store answers PTTL like Redis', async (t) => {
  let now = 0
  const store = new MemoryStore({ now: () => now })
  t.equal(await store.pttl('missing'), -2)
  await store.set('forever', 'v', 0)
  t.equal(await store.pttl('forever'), -1)
  await store.set('hour', 'v', 3600)
  now += 1000
  t.equal(await store.pttl('hour'), 3_599_000)
})
