import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { CounterOverflowError, createCache, MAX_COUNTER, type Cache, type CacheStore } from '../index.js'
import { uniqueName, type StoreFactory } from './factory.js'

/**
 * Counters (CounterStore): incr, decr and offsetMulti at every edge, and the stats counters every
 * process adds to.
 */
export function countersContract<S extends CacheStore> (t: Test, name: string, { make, peer }: StoreFactory<S>): void {
  t.test(`${name} store: counters contract`, async (t) => {
    const fresh = async (t: Test): Promise<Cache> => createCache({ store: await make(t), namespace: uniqueName('ns') })

    t.test('incr and decr', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.incr('missing'), undefined, 'a missing key stays missing')
      t.equal(await cache.get('missing'), undefined)
      t.equal(await cache.incr('n', { initialValue: 10 }), 11)
      t.equal(await cache.incr('n', { delta: 5 }), 16)
      t.equal(await cache.get('n'), 16, 'get reads a counter as a number')
      t.equal(await cache.decr('n', { delta: 6 }), 10)
      t.equal(await cache.decr('n', { delta: 100 }), 0, 'decr floors at 0, as memcache does')
      t.equal(await cache.decr('fresh', { initialValue: 3 }), 2)
      await cache.set('set-number', 41)
      t.equal(await cache.incr('set-number'), 42, 'a number stored with set is a counter')
      await cache.set('text', 'abc')
      t.equal(await cache.incr('text'), undefined, 'a value that is no integer cannot be incremented')
      t.equal(await cache.get('text'), 'abc')
      await t.rejects(cache.incr('n', { delta: -1 }), RangeError, 'a negative delta is an error')
      await t.rejects(cache.decr('n', { delta: -1 }), RangeError)
      await t.rejects(cache.incr('n', { delta: 1.5 }), RangeError)
    })

    t.test('counters past 2^53 stay exact; past 2^63 - 1 they are refused, never wrong', async (t) => {
      const cache = await fresh(t)
      const big = 2n ** 62n
      t.equal(await cache.incr('big', { initialValue: big }), big + 1n)
      t.equal(await cache.get('big'), big + 1n)
      t.equal(await cache.incr('big', { delta: MAX_COUNTER - big - 1n }), MAX_COUNTER)
      await t.rejects(cache.incr('big'), CounterOverflowError)
      t.equal(await cache.get('big'), MAX_COUNTER, 'the value is unchanged')
      await t.rejects(cache.incr('other', { initialValue: MAX_COUNTER }), CounterOverflowError)
      t.equal(await cache.get('other'), undefined)
    })

    t.test('every store answers alike at a counter\'s edges, whatever the stored text', async (t) => {
      const store = await make(t)
      const cache = createCache({ store, namespace: uniqueName('ns') })
      const raw = { beyond64: '18446744073709551615', beyond63: '9223372036854775808', negative: '-1', spaced: ' 1', plus: '+1', float: '1.0', max: '9223372036854775807', maxBig: '9223372036854775807n' }
      await store.write('set', Object.entries(raw).map(([key, value]) => ({ key: `${cache.namespace}:k:${key}`, value, casToken: 't', ttlMs: 0 })))
      for (const key of ['beyond64', 'beyond63', 'negative', 'spaced', 'plus', 'float']) {
        t.equal(await cache.incr(key), undefined, `${key}: no counter`)
        t.equal((await store.get([`${cache.namespace}:k:${key}`]))[0], raw[key as keyof typeof raw], `${key}: left as it is`)
      }
      await t.rejects(cache.incr('max'), CounterOverflowError)
      await t.rejects(cache.incr('maxBig'), CounterOverflowError)
      t.equal(await cache.decr('maxBig'), MAX_COUNTER - 1n)
      t.equal((await store.get([`${cache.namespace}:k:maxBig`]))[0], '9223372036854775806n', 'a bigint counter stays one')
    })

    t.test('offsetMulti', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ a: 10, b: 10 }, { keyPrefix: 'c:' })
      t.same(await cache.offsetMulti({ a: 5, b: -20, c: 1 }, { keyPrefix: 'c:' }), { a: 15, b: 0, c: undefined })
      t.same(await cache.offsetMulti({ c: 1 }, { keyPrefix: 'c:', initialValue: 7 }), { c: 8 })
    })

    t.test('incr keeps the expiry of the counter', async (t) => {
      const cache = await fresh(t)
      await cache.set('ttl', 1, { ttl: 1 })
      t.equal(await cache.incr('ttl'), 2)
      await sleep(1100)
      t.equal(await cache.get('ttl'), undefined)
    })

    t.test('getStats adds up every client of the store; items, bytes and ages describe the namespace', async (t) => {
      const store = await make(t)
      const namespace = uniqueName('ns')
      const a = createCache({ store, namespace })
      const b = createCache({ store: await peer(t, store), namespace })
      await a.setMulti({ one: 'x', two: 'yy', three: 'zzz' })
      await a.get('one')
      await a.get('none')
      await b.getMulti(['two', 'three', 'nothing'])
      await b.flushStats() // another instance's counts arrive with its next flush
      const stats = await a.getStats()
      t.match(stats, { hits: 3, misses: 2, errors: 0, items: 3, statsComplete: true })
      t.equal(stats.byteHits, '"x"'.length + '"yy"'.length + '"zzz"'.length, 'byteHits counts the serialized values read')
      t.ok(stats.bytes > 0, `bytes estimated: ${stats.bytes}`)
      t.ok(stats.oldestItemAge >= 0)
      t.match(await a.getStats({ namespace: uniqueName('empty') }), { hits: 0, misses: 0, items: 0, bytes: 0 })
      await a.flushAll()
      t.match(await a.getStats(), { items: 0, hits: 3 }, 'flushAll empties the namespace, not its counters')
    })

    t.test('concurrent flushes never count the same reads twice', async (t) => {
      const cache = await fresh(t)
      await cache.set('k', 1)
      for (let i = 0; i < 4; i++) await cache.get('k')
      const [stats] = await Promise.all([cache.getStats(), cache.flushStats(), cache.getStats({ namespace: cache.namespace }), cache.flushStats()])
      t.match(stats, { hits: 4, misses: 0 })
      t.match(await cache.getStats(), { hits: 4, misses: 0 })
    })

    t.test('counting costs the hot path no round trip: counters go out in batches', async (t) => {
      const store = await make(t)
      let batches = 0
      const addCounters = store.addCounters.bind(store)
      store.addCounters = async (batch) => { batches++; await addCounters(batch) }
      const cache = createCache({ store, namespace: uniqueName('ns'), statsFlushMs: 50 })
      await cache.set('k', 1)
      for (let i = 0; i < 50; i++) await cache.get(i % 2 === 0 ? 'k' : 'missing')
      t.equal(batches, 0, 'no flush while serving')
      await sleep(100)
      t.equal(batches, 1, 'one batch for all fifty reads')
      t.match(await cache.getStats(), { hits: 25, misses: 25 })
    })
  })
}
