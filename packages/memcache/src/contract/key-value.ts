import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { createCache, UncacheableValueError, ValueTooLargeError, type Cache, type CacheStore } from '../index.js'
import { uniqueName, type StoreFactory } from './factory.js'

/**
 * Values under keys (KeyValueStore), through the memcache API: types, writes by mode, deletes and their
 * locks, cas, expiry, long keys, size limits, namespaces. The API needs counters too (CounterStore).
 */
export function keyValueContract<S extends CacheStore> (t: Test, name: string, { make, peer }: StoreFactory<S>): void {
  t.test(`${name} store: key-value contract`, async (t) => {
    const fresh = async (t: Test): Promise<Cache> => createCache({ store: await make(t), namespace: uniqueName('ns') })

    t.test('get, getMulti: misses are undefined; found keys come back without their prefix', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.get('nothing'), undefined)
      t.same(await cache.lookup('nothing'), { status: 'miss' })
      await cache.setMulti({ a: 1, b: 'two' }, { keyPrefix: 'p:' })
      t.same(await cache.getMulti(['a', 'b', 'c'], { keyPrefix: 'p:' }), { a: 1, b: 'two' })
      t.same(await cache.getMulti(['p:a', 'zzz']), { 'p:a': 1 })
      t.equal(cache.counters().misses, 4)
      t.equal(cache.counters().hits, 3)
    })

    t.test('values keep their types', async (t) => {
      const cache = await fresh(t)
      const values: Record<string, unknown> = {
        string: 'héllo <b>',
        digits: '42',
        number: 42.5,
        zero: 0,
        boolean: false,
        null: null,
        array: [1, 'two', { three: 3 }],
        object: { nested: { deep: true }, $tricky: 'dollar key' },
        date: new Date('2026-11-21T10:00:00.123Z'),
        buffer: Buffer.from([0, 1, 2, 255]),
        bigint: 2n ** 62n + 1n,
        smallBigint: 5n,
        negativeBigint: -5n,
        nestedBigint: { n: 2n ** 60n, small: 1n },
        bigNumber: 2 ** 60,
        map: new Map<unknown, unknown>([['a', 1], [2, { b: new Date(0) }]]),
        set: new Set(['x', 1, 3n]),
        special: [NaN, Infinity, -Infinity, -0, undefined, null]
      }
      t.same(await cache.setMulti(values), [], 'all stored')
      const read = await cache.getMulti<unknown>(Object.keys(values))
      t.same(read, values)
      for (const [key, value] of Object.entries(values)) {
        t.equal(Object.prototype.toString.call(read[key]), Object.prototype.toString.call(value), `${key} keeps its type`)
      }
      t.ok((await cache.get<Date>('date')) instanceof Date, 'a Date comes back as a Date')
      t.ok(Buffer.isBuffer(await cache.get('buffer')), 'a Buffer comes back as a Buffer')
      t.equal(await cache.get('smallBigint'), 5n, 'a small bigint stays a bigint')
      t.equal(await cache.get('bigNumber'), 2 ** 60, 'a number past 2^53 stays a number')
      t.ok(Object.is((await cache.get<number[]>('special'))?.[3], -0), '-0 stays -0')
      t.ok(Number.isNaN((await cache.get<number[]>('special'))?.[0]), 'NaN stays NaN')
      t.equal(await cache.get('digits'), '42', 'a string of digits stays a string')
      await cache.set('invalidDate', new Date(NaN))
      const invalid = await cache.get<Date>('invalidDate')
      t.ok(invalid instanceof Date && Number.isNaN(invalid.getTime()), 'an invalid Date stays an invalid Date')
    })

    t.test('values that would not come back as they are are refused at set time, and nothing of the call is written', async (t) => {
      const cache = await fresh(t)
      class Point { x = 1 }
      const refused: Record<string, unknown> = {
        regexp: /x/g,
        typedArray: new Uint8Array([1, 2]),
        arrayBuffer: new ArrayBuffer(2),
        instance: new Point(),
        error: new Error('e'),
        url: new URL('https://example.com/'),
        fn: () => 1,
        symbol: Symbol('s'),
        nested: { ok: 1, inner: [new Point()] },
        inMap: new Map([['k', /x/]]),
        undefined
      }
      for (const [key, value] of Object.entries(refused)) {
        await t.rejects(cache.set(key, value), { name: 'UncacheableValueError', message: /cannot be cached/ }, key)
      }
      await t.rejects(cache.setMulti({ fine: 1, bad: new Point() }), UncacheableValueError)
      t.same(await cache.getMulti(['fine', ...Object.keys(refused)]), {}, 'nothing written')
      t.equal(cache.counters().errors, 0, 'a refused value is no store error')
    })

    t.test('set, add, replace and their multi forms', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.replace('k', 1), false, 'replace needs the key')
      t.equal(await cache.add('k', 1), true)
      t.equal(await cache.add('k', 2), false, 'add needs the key absent')
      t.equal(await cache.replace('k', 3), true)
      t.equal(await cache.set('k', 4), true)
      t.equal(await cache.get('k'), 4)
      t.same(await cache.addMulti({ k: 5, fresh: 6 }), ['k'], 'addMulti returns the keys not stored')
      t.same(await cache.replaceMulti({ k: 7, absent: 8 }, { keyPrefix: '' }), ['absent'])
      t.same(await cache.getMulti(['k', 'fresh', 'absent']), { k: 7, fresh: 6 })
      t.same(await cache.setMulti({}), [])
    })

    t.test('delete, deleteMulti, and the add lock of delete(lockSeconds)', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ a: 1, b: 2, c: 3 })
      t.equal(await cache.delete('a'), 'deleted')
      t.equal(await cache.delete('a'), 'missing')
      t.equal(await cache.deleteMulti(['b', 'nope']), true, 'missing keys do not make deleteMulti fail')
      t.same(await cache.getMulti(['a', 'b', 'c']), { c: 3 })

      t.equal(await cache.delete('c', { lockSeconds: 1 }), 'deleted')
      t.equal(await cache.get('c'), undefined)
      t.equal(await cache.add('c', 'during lock'), false, 'add fails while the key is locked')
      t.equal(await cache.replace('c', 'during lock'), false, 'replace finds nothing to replace')
      await sleep(1100)
      t.equal(await cache.add('c', 'after lock'), true, 'add works once the lock expires')

      await cache.set('d', 1)
      await cache.delete('d', { lockSeconds: 60 })
      t.equal(await cache.set('d', 'set ignores the lock'), true)
      t.equal(await cache.get('d'), 'set ignores the lock')
    })

    t.test('gets and cas', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.gets('k'), undefined)
      await cache.set('k', 'v1')
      const first = await cache.gets<string>('k')
      t.equal(first?.value, 'v1')
      t.equal(await cache.cas('k', 'v2', first!.casToken), true)
      t.equal(await cache.cas('k', 'v3', first!.casToken), false, 'a used token fails')
      t.equal(await cache.get('k'), 'v2')

      const second = await cache.gets<string>('k')
      await cache.set('k', 'v2') // the same value, written again by someone else
      t.equal(await cache.cas('k', 'v4', second!.casToken), false, 'any write in between makes cas fail')
      const third = await cache.gets<number>('k')
      await cache.delete('k')
      t.equal(await cache.cas('k', 'v5', third!.casToken), false, 'cas does not bring back a deleted key')
      await cache.set('n', 1)
      const counter = await cache.gets('n')
      await cache.incr('n')
      t.equal(await cache.cas('n', 100, counter!.casToken), false, 'incr counts as a write')
    })

    t.test('cas between two clients: exactly one of many racing writers wins', async (t) => {
      const store = await make(t)
      const namespace = uniqueName('ns')
      const a = createCache({ store, namespace })
      const b = createCache({ store: await peer(t, store), namespace })
      await a.set('shared', 0)
      const { casToken } = (await b.gets<number>('shared'))!
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).cas('shared', i, casToken)))
      t.equal(results.filter(Boolean).length, 1)
      t.equal(await a.get('shared'), results.indexOf(true))
    })

    t.test('add between two clients: exactly one of many racing writers wins', async (t) => {
      const store = await make(t)
      const namespace = uniqueName('ns')
      const a = createCache({ store, namespace })
      const b = createCache({ store: await peer(t, store), namespace })
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).add('once', i)))
      t.equal(results.filter(Boolean).length, 1)
      const counts = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).incr('count', { initialValue: 0 })))
      t.same([...counts].sort((x, y) => Number(x) - Number(y)), Array.from({ length: 20 }, (_, i) => i + 1), 'every incr is counted once')
    })

    t.test('relative and absolute TTLs', async (t) => {
      const cache = await fresh(t)
      await cache.set('short', 'lived', { ttl: 1 })
      await cache.set('long', 'lived', { ttl: 60 })
      const now = Math.floor(Date.now() / 1000)
      await cache.set('absolute', 'z', { ttl: now + 60 })
      t.equal(await cache.set('past', 'y', { ttl: now - 10 }), true)
      t.equal(await cache.get('past'), undefined, 'an absolute time in the past expires it at once')
      t.equal(await cache.get('short'), 'lived')
      await sleep(1100)
      t.equal(await cache.get('short'), undefined, 'gone after its ttl')
      t.equal(await cache.get('long'), 'lived')
      t.equal(await cache.get('absolute'), 'z')
      await t.rejects(cache.set('negative', 'v', { ttl: -1 }), RangeError)
    })

    t.test('long keys are hashed, not refused', async (t) => {
      const cache = await fresh(t)
      const base = 'k'.repeat(250)
      await cache.setMulti({ [`${base}1`]: 'one', [`${base}2`]: 'two', [base]: 'exact' })
      t.same(await cache.getMulti([`${base}1`, `${base}2`, base]), { [`${base}1`]: 'one', [`${base}2`]: 'two', [base]: 'exact' },
        'keys that share their first 250 bytes stay apart')
      t.equal(await cache.delete(`${base}1`), 'deleted')
    })

    t.test('values over 1,000,000 bytes are refused with a clear error', async (t) => {
      const cache = await fresh(t)
      await t.rejects(cache.set('huge', 'x'.repeat(1_000_001)), ValueTooLargeError)
      await t.rejects(cache.setMulti({ ok: 1, huge: 'x'.repeat(1_000_001) }), { name: 'ValueTooLargeError', message: /huge.*1000001 bytes.*limit is 1000000/ })
      t.equal(await cache.get('ok'), undefined, 'nothing of a refused batch is written')
      await t.rejects(cache.set('accents', 'é'.repeat(500_001)), ValueTooLargeError, 'a string counts its UTF-8 bytes')
      t.equal(await cache.set('fits', 'x'.repeat(1_000_000)), true, 'a string of exactly 1,000,000 bytes fits')
      t.equal((await cache.get<string>('fits'))?.length, 1_000_000)
      await t.rejects(cache.set('fn', () => 1), UncacheableValueError)
    })

    t.test('namespaces are isolated, per cache and per call', async (t) => {
      const a = await fresh(t)
      const b = a.namespaced(uniqueName('other'))
      await a.set('same', 'from a')
      await b.set('same', 'from b')
      t.equal(await a.get('same'), 'from a')
      t.equal(await b.get('same'), 'from b')
      t.equal(await a.get('same', { namespace: b.namespace }), 'from b', 'a call may name its namespace')
      // "x:k:y" in namespace "n" must not be the key "y" in namespace "n:k:x"
      const n = uniqueName('n')
      await a.set('x:k:y', 'plain', { namespace: n })
      t.equal(await a.get('y', { namespace: `${n}:k:x` }), undefined)
    })

    t.test('flushAll empties its namespace and nothing else', async (t) => {
      const a = await fresh(t)
      const star = a.namespaced(`${a.namespace}*`)
      const other = a.namespaced(`${a.namespace}b`)
      await a.setMulti({ one: 1, two: 2, ['long'.repeat(100)]: 3 })
      await star.set('one', 'star')
      await other.set('one', 'other')
      t.equal(await star.flushAll(), true)
      t.equal(await star.get('one'), undefined)
      t.equal(await a.get('one'), 1, 'a namespace with glob characters flushes only itself')
      t.equal(await a.flushAll(), true)
      t.same(await a.getMulti(['one', 'two', 'long'.repeat(100)]), {})
      t.equal(await other.get('one'), 'other')
    })

    t.test('a value that cannot be decoded is a miss', async (t) => {
      const store = await make(t)
      const cache = createCache({ store, namespace: uniqueName('ns') })
      await store.write('set', [{ key: `${cache.namespace}:k:garbage`, value: '{not json', casToken: 't', ttlMs: 0 }])
      t.same(await cache.lookup('garbage'), { status: 'miss' })
      t.equal(cache.counters().errors, 1)
    })
  })
}
