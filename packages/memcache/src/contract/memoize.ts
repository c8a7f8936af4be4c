import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { createCache, type Cache, type CacheStore } from '../index.js'
import { uniqueName, type StoreFactory } from './factory.js'

/**
 * Memoization on a store: single flight in a process, one run at a time across processes, generations, grace.
 */
export function memoizeContract<S extends CacheStore> (t: Test, name: string, { make, peer }: StoreFactory<S>): void {
  t.test(`${name} store: memoize contract`, async (t) => {
    const fresh = async (t: Test): Promise<Cache> => createCache({ store: await make(t), namespace: uniqueName('ns') })

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
  })
}
