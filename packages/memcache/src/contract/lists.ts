import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { createCache, listItemId, type Cache, type CacheStore, type ListLookup, type ListReservationLookup, type ListStore, type PubSubStore } from '../index.js'
import { uniqueName, waitUntil, type StoreFactory } from './factory.js'

/**
 * Bounded lists (ListStore, which announces every change and so needs PubSubStore): merging, bounds,
 * versions, reservations, expiry, and races between processes.
 */
export function listsContract<S extends CacheStore & ListStore & PubSubStore> (t: Test, name: string, { make, peer }: StoreFactory<S>): void {
  t.test(`${name} store: lists contract`, async (t) => {
    const fresh = async (t: Test): Promise<Cache> => createCache({ store: await make(t), namespace: uniqueName('ns') })
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
        'equal orders: the greater id first, as a descending query by order, then id, would list them')
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

    t.test('lists: a reservation decides "newest or new" and names the entry after the newest settled one', async (t) => {
      const cache = await fresh(t)
      t.same(await reserve(cache, 'x'), { status: 'miss' }, 'no list: nothing to decide on')
      await cache.listBegin('l', { lockSeconds: 5 })
      t.match(await reserve(cache, 'x'), { status: 'building' }, 'a list being built cannot decide')
      await cache.listAdd('l', [{ id: 'a', order: 100, value: 'alice' }], { limit: 3, complete: { ttl: 60 } })

      t.match(await reserve(cache, 'alice'), { status: 'same' }, 'the newest settled entry\'s value: nothing to add')
      const bob = await reserve(cache, 'bob', 50)
      t.match(bob, { status: 'reserved', id: listItemId('a', 'bob'), order: 101 }, 'named after the newest settled entry; its order raised above the head\'s')
      t.same('items' in bob && bob.items.map((i) => i.value), ['alice'], 'a reservation is not listed')
      t.ok('reserved' in bob && bob.reserved.count === 1 && bob.reserved.soonestMs! > 9000 && bob.reserved.soonestMs! <= 10_000,
        'it is counted, with its time left')
      t.match(await reserve(cache, 'bob'), { status: 'reserved-already' }, 'a second request of the same value waits for the first')
      t.match(await reserve(cache, 'alice'), { status: 'same', reserved: { newestSettled: false } }, 'still the newest settled value: a reservation above it is not settled yet')
      const carol = await reserve(cache, 'carol', 5000)
      t.match(carol, { status: 'reserved', id: listItemId('a', 'carol'), order: 5000 },
        'a later value is named after the newest settled entry, not the reservation above it (which may never be stored)')

      const settled = await cache.listAdd('l', [{ id: listItemId('a', 'bob'), order: 120, value: 'bob' }], { limit: 3 })
      t.same('items' in settled && settled.items.map((i) => [i.id.slice(0, 4), i.order, i.value]),
        [[listItemId('a', 'bob').slice(0, 4), 120, 'bob'], ['a', 100, 'alice']], 'listAdd settles a reserved entry with the order it is given')
      t.match(settled, { reserved: { count: 1 } }, 'carol is still reserved')
      t.match(await reserve(cache, 'bob'), { status: 'same' }, 'the settled entry is the newest settled one now')
      t.match(await cache.listRelease('l', listItemId('a', 'bob')), { items: [{ value: 'bob' }, { value: 'alice' }], reserved: { count: 1 } }, 'a settled entry is not released')
      t.match(await cache.listRelease('l', listItemId('a', 'carol')), { reserved: { count: 0 } }, 'a reserved one is')
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
