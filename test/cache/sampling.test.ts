import t from 'tap'
import { createCache, MemoryStore } from '@visitme/memcache'

t.test('sampleKeys: every key read or written goes to the hook at every: 1, with its namespace', async (t) => {
  const seen: string[] = []
  const cache = createCache({ store: new MemoryStore(), namespace: 'a', sampleKeys: { every: 1, record: (ns, key) => { seen.push(`${ns} ${key}`) } } })
  await cache.set('x', 1)
  await cache.get('x')
  await cache.getMulti(['x', 'y'], { namespace: 'b' })
  await cache.incr('n', { initialValue: 0 })
  await cache.delete('x')
  const item = await cache.gets<number>('n')
  await cache.cas('n', 5, item!.casToken)
  await cache.namespaced('c').lookup('z')
  await cache.listGet('list')
  cache.recordHit({ key: 'first-tier' })
  cache.recordHit()
  t.same(seen, ['a x', 'a x', 'b x', 'b y', 'a n', 'a x', 'a n', 'a n', 'c z', 'a list', 'a first-tier'])
})

t.test('sampleKeys: about one in `every`, and a failing hook fails nothing', async (t) => {
  let sampled = 0
  const cache = createCache({ store: new MemoryStore(), sampleKeys: { every: 10, record: () => { sampled++ } } })
  await cache.set('k', 'v')
  for (let i = 0; i < 20_000; i++) await cache.get('k')
  // 2,000 expected; the gaps are random, so a wide band.
  t.ok(sampled > 1500 && sampled < 2500, `${sampled} sampled of 20,001`)

  const failing = createCache({ store: new MemoryStore(), sampleKeys: { every: 1, record: () => { throw new Error('boom') } } })
  t.equal(await failing.set('k', 'v'), true)
  t.equal(await failing.get('k'), 'v')
  t.throws(() => createCache({ store: new MemoryStore(), sampleKeys: { every: 0, record: () => {} } }), /sampleKeys.every must be an integer >= 1/)
})

t.test('inspect(): the value, its stored size and store key, not counted as a read', async (t) => {
  const cache = createCache({ store: new MemoryStore(), namespace: 'i' })
  await cache.set('k', { a: 'é' }, { ttl: 60 })
  const item = await cache.inspect<{ a: string }>('k')
  t.not(item, undefined)
  t.not(item, 'unavailable')
  if (item === undefined || item === 'unavailable') return
  t.same(item.value, { a: 'é' })
  t.equal(item.storedBytes, Buffer.byteLength('{"a":"é"}'))
  t.equal(item.storeKey, 'i:k:k')
  t.ok(item.expirationTimeSec > Date.now() / 1000 + 50)
  t.equal(await cache.inspect('missing'), undefined)
  t.same(cache.counters(), { hits: 0, misses: 0, byteHits: 0, errors: 0 }, 'nothing counted')
  await cache.delete('k', { lockSeconds: 30 })
  const locked = await cache.inspect('k')
  t.match(locked, { value: undefined, storedBytes: 0 })
  t.ok((locked as { deleteLockTimeSec: number }).deleteLockTimeSec > 0)
})
