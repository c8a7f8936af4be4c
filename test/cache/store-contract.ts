import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { createCache, type Store } from '../../src/cache/index.js'
import { uniqueName } from '../helper.js'

/** The cases every store passes, through the Cache facade that serves them. */
export function storeContract (t: Test, name: string, makeStore: (t: Test) => Promise<Store>): void {
  t.test(`${name} store contract`, async (t) => {
    const store = await makeStore(t)
    const fresh = () => createCache({ store, namespace: uniqueName('ns') })

    t.test('a missing key is a miss', async (t) => {
      const cache = fresh()
      t.same(await cache.lookup('nothing'), { status: 'miss' })
      t.equal(await cache.get('nothing'), undefined)
      t.equal(cache.counters.misses, 2)
    })

    t.test('values keep their types', async (t) => {
      const cache = fresh()
      const values: Record<string, unknown> = {
        string: 'héllo <b>',
        number: 42.5,
        zero: 0,
        boolean: false,
        null: null,
        array: [1, 'two', { three: 3 }],
        object: { nested: { deep: true }, $tricky: 'dollar key' },
        date: new Date('2026-11-21T10:00:00.123Z'),
        buffer: Buffer.from([0, 1, 2, 255]),
        visits: [{ visitor: '1.2.3.0: ua', timestamp: new Date(1_700_000_000_000) }]
      }
      for (const [key, value] of Object.entries(values)) t.equal(await cache.set(key, value), true, `stores ${key}`)
      for (const [key, value] of Object.entries(values)) t.same(await cache.get(key), value, `reads ${key} back`)
      t.ok((await cache.get<Date>('date')) instanceof Date, 'a Date comes back as a Date')
      t.ok(Buffer.isBuffer(await cache.get('buffer')), 'a Buffer comes back as a Buffer')
    })

    t.test('set overwrites and delete removes', async (t) => {
      const cache = fresh()
      await cache.set('k', 1)
      await cache.set('k', 2)
      t.equal(await cache.get('k'), 2)
      t.equal(await cache.delete('k'), 'deleted')
      t.equal(await cache.delete('k'), 'missing')
      t.equal(await cache.get('k'), undefined)
    })

    t.test('a relative ttl expires the value', async (t) => {
      const cache = fresh()
      await cache.set('short', 'lived', { ttl: 1 })
      await cache.set('long', 'lived', { ttl: 60 })
      t.equal(await cache.get('short'), 'lived')
      await sleep(1100)
      t.equal(await cache.get('short'), undefined, 'gone after its ttl')
      t.equal(await cache.get('long'), 'lived', 'a longer ttl keeps it')
    })

    t.test('a ttl over 30 days is an absolute Unix time', async (t) => {
      const cache = fresh()
      const now = Math.floor(Date.now() / 1000)
      await cache.set('past', 'x')
      t.equal(await cache.set('past', 'y', { ttl: now - 10 }), true)
      t.equal(await cache.get('past'), undefined, 'an absolute time in the past expires it at once')
      await cache.set('future', 'z', { ttl: now + 60 })
      t.equal(await cache.get('future'), 'z')
      await t.rejects(cache.set('negative', 'v', { ttl: -1 }), RangeError)
    })

    t.test('namespaces are isolated', async (t) => {
      const a = fresh()
      const b = a.namespaced(uniqueName('other'))
      await a.set('same', 'from a')
      await b.set('same', 'from b')
      t.equal(await a.get('same'), 'from a')
      t.equal(await b.get('same'), 'from b')
      await a.delete('same')
      t.equal(await b.get('same'), 'from b', 'deleting in one namespace leaves the other')
    })

    t.test('what cannot be encoded is refused, what cannot be decoded is a miss', async (t) => {
      const cache = fresh()
      await t.rejects(cache.set('fn', () => 1), TypeError)
      await store.set(`${cache.namespace}:garbage`, '{not json', 0)
      t.same(await cache.lookup('garbage'), { status: 'miss' })
      t.equal(cache.counters.errors, 1)
    })
  })
}
