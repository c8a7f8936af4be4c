import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { CounterOverflowError, createCache, listItemId, MAX_COUNTER, UncacheableValueError, ValueTooLargeError, type Cache, type ListLookup, type ListReservationLookup, type Store } from '../../src/cache/index.js'
import { uniqueName } from '../helpers/services.js'
import { appEngineContract } from './appengine-contract.js'

export interface StoreFactory {
  /** A store for one test. */
  make: (t: Test) => Promise<Store>
  /** Another client of the same backend, as a second instance of the service would have. */
  peer: (t: Test, store: Store) => Promise<Store>
}

/** The memcache contract: every store passes the same cases, through the Cache facade. */
export function storeContract (t: Test, name: string, { make, peer }: StoreFactory): void {
  appEngineContract(t, name, { make, peer })
  t.test(`${name} store: memcache contract`, async (t) => {
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
        t.equal((await store.get([`${cache.namespace}:k:${key}`]))[0]?.value, raw[key as keyof typeof raw], `${key}: left as it is`)
      }
      await t.rejects(cache.incr('max'), CounterOverflowError)
      await t.rejects(cache.incr('maxBig'), CounterOverflowError)
      t.equal(await cache.decr('maxBig'), MAX_COUNTER - 1n)
      t.equal((await store.get([`${cache.namespace}:k:maxBig`]))[0]?.value, '9223372036854775806n', 'a bigint counter stays one')
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

    t.test('memoize: results cached per arguments, single-flight in one process', async (t) => {
      const cache = await fresh(t)
      let runs = 0
      async function square (n: number): Promise<number> {
        runs++
        await sleep(100)
        return n * n
      }
      const cached = cache.memoize(square, { ttl: 60 })
      const results = await Promise.all(Array.from({ length: 20 }, () => cached(3)))
      t.same(new Set(results), new Set([9]))
      t.equal(runs, 1, 'twenty concurrent calls, one run')
      t.equal(await cached(3), 9)
      t.equal(await cached(4), 16)
      t.equal(runs, 2, 'other arguments, another run')
      t.equal(await cache.deleteMemoized(square, 3), true)
      t.equal(await cached(3), 9)
      t.equal(runs, 3, 'deleteMemoized(fn, ...args) forgets one result')
      t.equal(await cache.deleteMemoized(cached), true)
      await cached(3)
      await cached(4)
      t.equal(runs, 5, 'deleteMemoized(fn) forgets them all')
    })

    t.test('memoize: across two clients of the store, one run at a time', async (t) => {
      const store = await make(t)
      const namespace = uniqueName('ns')
      let runs = 0
      const report = async () => {
        runs++
        await sleep(300)
        return { at: Date.now() }
      }
      const a = createCache({ store, namespace }).memoize(report, { ttl: 60, key: 'report' })
      const b = createCache({ store: await peer(t, store), namespace }).memoize(report, { ttl: 60, key: 'report' })
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b)()))
      t.equal(runs, 1, 'ten calls on two clients, one run')
      t.equal(new Set(results.map((r) => r.at)).size, 1, 'everyone got the same result')
    })

    t.test('memoize: waiters do not hang on a holder that fails', async (t) => {
      const store = await make(t)
      const namespace = uniqueName('ns')
      let calls = 0
      async function flaky () {
        calls++
        await sleep(150)
        if (calls === 1) throw new Error('the first holder fails')
        return 'second try'
      }
      const a = createCache({ store, namespace }).memoize(flaky, { ttl: 60, lockSeconds: 10 })
      const b = createCache({ store: await peer(t, store), namespace }).memoize(flaky, { ttl: 60, lockSeconds: 10 })
      const first = a().catch((err: Error) => err.message)
      await sleep(20)
      const started = performance.now()
      const second = await b()
      t.equal(await first, 'the first holder fails')
      t.equal(second, 'second try')
      t.ok(performance.now() - started < 2000, 'the waiter saw the lock go and computed it, well before the 10 s lock ran out')
    })

    t.test('memoize: a call after deleteMemoized never joins a computation started before it', async (t) => {
      const cache = await fresh(t)
      let data = 'old'
      let readingStarted!: () => void
      const reading = new Promise<void>((resolve) => { readingStarted = resolve })
      const read = cache.memoize(async function readData () {
        const seen = data
        readingStarted()
        await sleep(200)
        return seen
      }, { ttl: 60 })
      const before = read()
      await reading
      data = 'new'
      await cache.deleteMemoized(read)
      t.equal(await read(), 'new')
      t.equal(await before, 'old')
      t.equal(await read(), 'new', 'the old computation did not overwrite the new result')
    })

    t.test('memoize: with grace, a stale result is served while one caller refreshes it', async (t) => {
      const cache = await fresh(t)
      let version = 0
      const slow = cache.memoize(async function version$ () {
        await sleep(200)
        return ++version
      }, { ttl: 1, grace: 10 })
      t.equal(await slow(), 1)
      await sleep(1100)
      const started = performance.now()
      const stale = await Promise.all([slow(), slow(), slow()])
      t.same(stale, [1, 1, 1], 'the stale value, at once')
      t.ok(performance.now() - started < 150, 'without waiting for the refresh')
      await sleep(400)
      t.equal(await slow(), 2, 'the refreshed value afterwards')
      t.equal(version, 2, 'refreshed once')
    })

    t.test('memoize: errors are not cached, and a result too large to cache is still returned', async (t) => {
      const cache = await fresh(t)
      let calls = 0
      const flaky = cache.memoize(async function flaky () {
        calls++
        if (calls === 1) throw new Error('first call fails')
        return 'ok'
      }, { ttl: 60 })
      await t.rejects(flaky(), /first call fails/)
      t.equal(await flaky(), 'ok')
      const huge = cache.memoize(function huge () { return 'x'.repeat(1_100_000) }, { ttl: 60 })
      t.equal((await huge()).length, 1_100_000)
      t.throws(() => cache.memoize(() => 1, { ttl: 60 }), TypeError, 'an anonymous function needs a key')
    })

    t.test('a value that cannot be decoded is a miss', async (t) => {
      const store = await make(t)
      const cache = createCache({ store, namespace: uniqueName('ns') })
      await store.write('set', [{ key: `${cache.namespace}:k:garbage`, value: '{not json', casToken: 't', ttlMs: 0 }])
      t.same(await cache.lookup('garbage'), { status: 'miss' })
      t.equal(cache.counters().errors, 1)
    })

    const entry = (id: string, order: number) => ({ id, order, value: { who: id } })
    const ids = (lookup: ListLookup<unknown> | ListReservationLookup<unknown>) => 'items' in lookup ? lookup.items.map((item) => item.id) : lookup.status

    t.test('lists: built once, merged newest first by order then id, one item per id, bounded', async (t) => {
      const cache = await fresh(t)
      t.same(await cache.listGet('l'), { status: 'miss' })
      t.same(await cache.listAdd('l', [entry('a', 1)], { limit: 3 }), { status: 'miss' }, 'adding to a missing list creates nothing')
      t.same(await cache.listGet('l'), { status: 'miss' })

      const begun = await cache.listBegin('l', { lockSeconds: 5 })
      t.match(begun, { status: 'building', items: [], began: true })
      t.match(await cache.listBegin('l', { lockSeconds: 5 }), { status: 'building', began: false }, 'only one builder')
      t.equal((await cache.listGet('l')).status, 'building', 'a list being built is not ready')
      t.same(ids(await cache.listAdd('l', [entry('late', 50)], { limit: 3 })), ['late'], 'entries added while it is built are kept')

      const built = await cache.listAdd('l', [entry('b', 20), entry('a', 10), entry('c', 30)], { limit: 3, complete: { ttl: 60 } })
      t.equal(built.status, 'ready')
      t.same(ids(built), ['late', 'c', 'b'], 'newest first, bounded to the limit')
      t.ok('ttlMs' in built && built.ttlMs > 59_000 && built.ttlMs <= 60_000, 'completing gives the TTL')

      t.same(ids(await cache.listAdd('l', [entry('c', 99)], { limit: 3 })), ['late', 'c', 'b'], 'an id already there is kept as it is')
      t.same(ids(await cache.listAdd('l', [entry('y', 20), entry('z', 20)], { limit: 5 })), ['late', 'c', 'z', 'y', 'b'],
        'equal orders: the greater id first, as a descending Firestore query')
      t.same(ids(await cache.listAdd('l', [entry('old', 1)], { limit: 5 })), ['late', 'c', 'z', 'y', 'b'], 'older than the whole list: dropped')
      const read = await cache.listGet<{ who: string }>('l')
      t.equal(read.status, 'ready')
      t.same('items' in read && read.items[0], { id: 'late', order: 50, value: { who: 'late' } }, 'values come back decoded')
    })

    t.test('lists: a key holding a plain value holds no list, and is replaced by one', async (t) => {
      const cache = await fresh(t)
      await cache.set('l', ['not', 'a', 'list'])
      t.same(await cache.listGet('l'), { status: 'miss' })
      t.same(await cache.listAdd('l', [entry('a', 1)], { limit: 3 }), { status: 'miss' })
      t.equal((await cache.listBegin('l', { lockSeconds: 5 })).began, true)
    })

    t.test('lists: versions only grow, also across a delete', async (t) => {
      const cache = await fresh(t)
      const versions: number[] = []
      const version = (lookup: ListLookup<unknown>) => 'version' in lookup ? lookup.version : NaN
      versions.push(version(await cache.listBegin('l', { lockSeconds: 5 })))
      versions.push(version(await cache.listAdd('l', [entry('a', 1)], { limit: 3 })))
      versions.push(version(await cache.listAdd('l', [entry('a', 1)], { limit: 3, complete: { ttl: 0 } })))
      await cache.delete('l')
      versions.push(version(await cache.listBegin('l', { lockSeconds: 5 })))
      t.ok(versions.every((v, i) => Number.isSafeInteger(v) && (i === 0 || v > versions[i - 1]!)), `versions ${versions.join(' < ')}`)
    })

    t.test('lists: writers racing from two clients lose nothing: the list is the newest of all they added', async (t) => {
      const store = await make(t)
      const a = createCache({ store, namespace: uniqueName('ns') })
      const b = createCache({ store: await peer(t, store), namespace: a.namespace })
      await a.listBegin('l', { lockSeconds: 30 })
      const orders = Array.from({ length: 60 }, (_, i) => (i * 7919) % 60)
      await Promise.all(orders.map((order, i) => (i % 2 === 0 ? a : b).listAdd('l', [entry(`v${order}`, order)], { limit: 10 })))
      await a.listAdd('l', [], { limit: 10, complete: { ttl: 60 } })
      t.same(ids(await b.listGet('l')), Array.from({ length: 10 }, (_, i) => `v${59 - i}`))
    })

    const ready = async (cache: Cache, entries: Array<{ id: string, order: number, value: unknown }>) => {
      await cache.listBegin('l', { lockSeconds: 5 })
      await cache.listAdd('l', entries, { limit: 3, complete: { ttl: 60 } })
    }
    const reserve = async (cache: Cache, value: string, order = 0, reserveSeconds = 10) =>
      await cache.listReserve('l', { value, seed: value, order }, { limit: 3, reserveSeconds })

    t.test('lists: a reservation decides "newest or new" and names the entry after the head it follows', async (t) => {
      const cache = await fresh(t)
      t.same(await reserve(cache, 'x'), { status: 'miss' }, 'no list: nothing to decide on')
      await cache.listBegin('l', { lockSeconds: 5 })
      t.match(await reserve(cache, 'x'), { status: 'building' }, 'a list being built cannot decide')
      await cache.listAdd('l', [{ id: 'a', order: 100, value: 'alice' }], { limit: 3, complete: { ttl: 60 } })

      t.match(await reserve(cache, 'alice'), { status: 'same' }, 'the newest settled entry\'s value: nothing to add')
      const bob = await reserve(cache, 'bob', 50)
      t.match(bob, { status: 'reserved', id: listItemId('a', 'bob'), order: 101 }, 'named after the head; its order raised above the head\'s')
      t.same('items' in bob && bob.items.map((i) => i.value), ['alice'], 'a reservation is not listed')
      t.ok('reserved' in bob && bob.reserved.count === 1 && bob.reserved.soonestMs! > 9000 && bob.reserved.soonestMs! <= 10_000,
        'it is counted, with its time left')
      t.match(await reserve(cache, 'bob'), { status: 'reserved-already' }, 'a second request of the same value waits for the first')
      t.match(await reserve(cache, 'alice'), { status: 'same', reserved: { newestSettled: false } }, 'still the newest settled value: a reservation above it is not settled yet')
      const carol = await reserve(cache, 'carol', 5000)
      t.match(carol, { status: 'reserved', id: listItemId(listItemId('a', 'bob'), 'carol'), order: 5000 }, 'a later value follows the reserved head')

      const settled = await cache.listAdd('l', [{ id: listItemId('a', 'bob'), order: 120, value: 'bob' }], { limit: 3 })
      t.same('items' in settled && settled.items.map((i) => [i.id.slice(0, 4), i.order, i.value]),
        [[listItemId('a', 'bob').slice(0, 4), 120, 'bob'], ['a', 100, 'alice']], 'listAdd settles a reserved entry with the order it is given')
      t.match(settled, { reserved: { count: 1 } }, 'carol is still reserved')
      t.match(await reserve(cache, 'bob'), { status: 'same' }, 'the settled entry is the newest settled one now')
      t.match(await cache.listRelease('l', listItemId('a', 'bob')), { items: [{ value: 'bob' }, { value: 'alice' }], reserved: { count: 1 } }, 'a settled entry is not released')
      t.match(await cache.listRelease('l', listItemId(listItemId('a', 'bob'), 'carol')), { reserved: { count: 0 } }, 'a reserved one is')
      t.same(await cache.listRelease('nothing', 'x'), { status: 'miss' })
    })

    t.test('lists: reservations count outside the limit, and the same decision is named alike on every client', async (t) => {
      const store = await make(t)
      const a = createCache({ store, namespace: uniqueName('ns') })
      const b = createCache({ store: await peer(t, store), namespace: a.namespace })
      await ready(a, [entry('x', 1), entry('y', 2), entry('z', 3)])
      const first = await reserve(a, 'new')
      t.same(ids(first), ['z', 'y', 'x'], 'three settled entries')
      t.match(first, { reserved: { count: 1 } }, 'and the reservation above them')
      t.match(await reserve(b, 'new'), { status: 'reserved-already' }, 'the other client sees it at once')
      await a.listAdd('l', [{ id: listItemId('z', 'new'), order: 10, value: 'new' }], { limit: 3 })
      t.same(ids(await b.listGet('l')), [listItemId('z', 'new'), 'z', 'y'], 'once settled, the limit holds again')
    })

    t.test('lists: concurrent reservations of one value on two clients: exactly one reserves', async (t) => {
      const store = await make(t)
      const a = createCache({ store, namespace: uniqueName('ns') })
      const b = createCache({ store: await peer(t, store), namespace: a.namespace })
      await ready(a, [entry('x', 1)])
      const outcomes = await Promise.all(Array.from({ length: 20 }, (_, i) => reserve(i % 2 === 0 ? a : b, i % 4 < 2 ? 'same-visitor' : `other ${i}`)))
      const mine = outcomes.filter((_, i) => i % 4 < 2).map((o) => o.status)
      t.equal(mine.filter((s) => s === 'reserved').length, 1, `one reservation for the repeated value (${mine.join(', ')})`)
      t.ok(mine.every((s) => s === 'reserved' || s === 'reserved-already'))
      t.equal(outcomes.filter((o) => o.status === 'reserved').length, 11, 'and one for each other value')
    })

    t.test('lists: a reservation left past its time drops the list, and that is announced', async (t) => {
      const store = await make(t)
      const a = createCache({ store, namespace: uniqueName('ns') })
      const heard: string[] = []
      const subscription = a.subscribe('l', { message: (m) => heard.push(m), reset: () => {} })
      t.teardown(async () => { await subscription.close() })
      await waitUntil(() => subscription.live)
      await ready(a, [entry('x', 1)])
      await reserve(a, 'gone', 0, 1)
      await sleep(1100)
      t.same(await a.listGet('l'), { status: 'miss' }, 'its writer never said how its write ended: what the list lacks is unknown')
      await waitUntil(() => heard.includes('dropped'))
      t.match(await a.listBegin('l', { lockSeconds: 5 }), { began: true, items: [] }, 'so it is built again, without the reservation that ran out')
    })

    t.test('lists: a list that expires is built again with the reservations still running in it', async (t) => {
      const cache = await fresh(t)
      await cache.listBegin('l', { lockSeconds: 5 })
      await cache.listAdd('l', [entry('x', 1)], { limit: 3, complete: { ttl: 1 } })
      const running = await reserve(cache, 'running')
      const settled = await reserve(cache, 'settled', 0)
      await sleep(1100)
      t.same(await cache.listGet('l'), { status: 'miss' }, 'expired')
      t.same(await reserve(cache, 'late'), { status: 'miss' }, 'nothing is decided on an expired list')
      t.same(await cache.listAdd('l', [{ id: settled.status === 'reserved' ? settled.id : '', order: 9, value: 'settled' }], { limit: 3 }), { status: 'miss' },
        'a reservation settled after the expiry is not added to it')
      const begun = await cache.listBegin('l', { lockSeconds: 5 })
      t.match(begun, { status: 'building', began: true })
      t.match(begun, { items: [], reserved: { count: 1 } }, 'the rebuild starts with the reservation still running, and not the one settled meanwhile')
      t.match(await reserve(cache, 'running'), { status: 'reserved-already' }, 'whose value is known to be in flight while the list is built')
      t.match(await reserve(cache, 'other'), { status: 'building' })
      t.same(ids(await cache.listAdd('l', [{ id: running.status === 'reserved' ? running.id : '', order: 5, value: 'running' }], { limit: 3, complete: { ttl: 60 } })).length, 1,
        'which is settled into the rebuilt list')
    })

    t.test('lists: every change is announced to subscribers in every process', async (t) => {
      const store = await make(t)
      const a = createCache({ store, namespace: uniqueName('ns') })
      const b = createCache({ store: await peer(t, store), namespace: a.namespace })
      const heard: string[] = []
      let resets = 0
      const subscription = a.subscribe('l', { message: (m) => heard.push(m), reset: () => { resets++ } })
      t.teardown(async () => { await subscription.close() })
      await waitUntil(() => subscription.live)
      await b.listBegin('l', { lockSeconds: 5 })
      const added = await b.listAdd('l', [entry('x', 1)], { limit: 3 })
      await waitUntil(() => heard.length > 0)
      t.same(heard, ['version' in added ? String(added.version) : 'none'], 'the new version, once')
      t.equal(await b.announce('l'), true)
      await waitUntil(() => heard.length > 1)
      t.equal(heard[1], 'changed')
      t.ok(resets <= 1, 'no reset while the connection holds')
    })
  })
}

async function waitUntil (check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(5)
  }
}
