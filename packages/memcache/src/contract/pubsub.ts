import type { Test } from 'tap'
import { createCache, type CacheStore, type PubSubStore } from '../index.js'
import { uniqueName, waitUntil, type StoreFactory } from './factory.js'

/** Announcements (PubSubStore): heard in every process sharing the backend, per channel, until closed. */
export function pubSubContract<S extends CacheStore & PubSubStore> (t: Test, name: string, { make, peer }: StoreFactory<S>): void {
  t.test(`${name} store: pub/sub contract`, async (t) => {
    t.test('a message reaches every subscriber of its channel, in its publisher\'s order, and no other channel', async (t) => {
      const store = await make(t)
      const other = await peer(t, store)
      const channel = uniqueName('channel')
      const heard: string[] = []
      const elsewhere: string[] = []
      const subscription = store.subscribe(channel, { message: (m) => heard.push(m), reset: () => {} })
      const unrelated = other.subscribe(uniqueName('channel'), { message: (m) => elsewhere.push(m), reset: () => {} })
      t.teardown(async () => { await Promise.all([subscription.close(), unrelated.close()]) })
      await waitUntil(() => subscription.live && unrelated.live)
      await other.publish(channel, 'one')
      await other.publish(channel, 'two')
      await store.publish(channel, 'three')
      await waitUntil(() => heard.length === 3)
      // In order per publisher; across publishers only on one server: a cluster relays a message
      // published on another node over its bus, which may deliver it after a later local one.
      t.same(heard.filter((m) => m !== 'three'), ['one', 'two'], 'one client\'s messages in the order sent')
      t.same([...heard].sort(), ['one', 'three', 'two'], 'every message, once')
      t.same(elsewhere, [], 'another channel hears nothing')
    })

    t.test('a closed subscription hears nothing more; the others still do', async (t) => {
      const store = await make(t)
      const channel = uniqueName('channel')
      const first: string[] = []
      const second: string[] = []
      const a = store.subscribe(channel, { message: (m) => first.push(m), reset: () => {} })
      const b = (await peer(t, store)).subscribe(channel, { message: (m) => second.push(m), reset: () => {} })
      t.teardown(async () => { await b.close() })
      await waitUntil(() => a.live && b.live)
      await a.close()
      await store.publish(channel, 'after')
      await waitUntil(() => second.length === 1)
      t.same(first, [])
      t.same(second, ['after'])
    })

    t.test('the cache announces a key on the channel its subscribers listen to, per namespace', async (t) => {
      const store = await make(t)
      const a = createCache({ store, namespace: uniqueName('ns') })
      const b = createCache({ store: await peer(t, store), namespace: a.namespace })
      const heard: string[] = []
      const subscription = a.subscribe('k', { message: (m) => heard.push(m), reset: () => {} })
      t.teardown(async () => { await subscription.close() })
      await waitUntil(() => subscription.live)
      t.equal(await b.announce('k', { namespace: uniqueName('other') }), true)
      t.equal(await b.announce('k'), true)
      await waitUntil(() => heard.length > 0)
      t.same(heard, ['changed'], 'once, and not for the same key of another namespace')
    })
  })
}
