import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { CounterOverflowError, createCache, MAX_COUNTER, ValueTooLargeError, type Cache, type CacheStore } from '../index.js'
import { uniqueName, type StoreFactory } from './factory.js'

/** A store whose every call fails, as Redis does when it is down or times out. */
function failing (store: CacheStore): CacheStore {
  return new Proxy(store, {
    get (target, property, receiver) {
      const member: unknown = Reflect.get(target, property, receiver)
      if (typeof member !== 'function' || property === 'subscribe') return member
      return async () => { throw new Error('ECONNRESET') }
    }
  })
}

const nowSec = (): number => Math.floor(Date.now() / 1000)

/**
 * The behaviour App Engine's own memcache tests specify (memcache_stub_unittest.py and
 * memcache_unittest.py of the App Engine SDK), case by case, on a store. Where a case is
 * kept different on purpose, the case asserts the difference; docs/cache.md gives the reason.
 */
export function appEngineContract<S extends CacheStore> (t: Test, name: string, { make }: StoreFactory<S>): void {
  t.test(`${name} store: App Engine memcache cases`, async (t) => {
    const fresh = async (t: Test): Promise<Cache> => createCache({ store: await make(t), namespace: uniqueName('ae') })
    const long = 'key2 is very very long' + ' pad'.repeat(100)

    t.test('set stores under short and long keys; a second set wins; setMulti stores every key', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.set('key1', 'value1'), true)
      t.equal(await cache.set(long, 'value2'), true)
      t.equal(await cache.get('key1'), 'value1')
      t.equal(await cache.get(long), 'value2')
      t.equal(await cache.set('key1', 'value2'), true)
      t.equal(await cache.get('key1'), 'value2', 'the second set wins')
      t.same(await cache.setMulti({ a: 'value1', [long]: 'value2', c: 'value3' }), [])
      t.same(await cache.getMulti(['a', long, 'c']), { a: 'value1', [long]: 'value2', c: 'value3' })
    })

    t.test('add only where the key is absent; replace only where it is present; their multi forms answer the keys not stored', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.add('key1', 'value1'), true)
      t.equal(await cache.add('key1', 'value2'), false)
      t.equal(await cache.get('key1'), 'value1')
      t.same(await cache.addMulti({ key2: 'value2', [long]: 'v' }), [])
      t.same(await cache.addMulti({ [long]: 'value3', key3: 'value3' }), [long])
      t.same(await cache.getMulti(['key2', long, 'key3']), { key2: 'value2', [long]: 'v', key3: 'value3' })
      t.equal(await cache.replace('absent', 'value1'), false)
      t.equal(await cache.get('absent'), undefined, 'a failed replace writes nothing')
      t.equal(await cache.replace('key1', 'value2'), true)
      t.equal(await cache.get('key1'), 'value2')
      t.same(await cache.replaceMulti({ key1: 'value3', absent: 'value3' }), ['absent'])
      t.same(await cache.getMulti(['key1', 'absent']), { key1: 'value3' })
    })

    t.test('namespaces keep one key apart for set, add, replace, delete, delete locks and cas', async (t) => {
      const cache = await fresh(t)
      const ns1 = uniqueName('ns1')
      const ns2 = uniqueName('ns2')
      t.equal(await cache.set('key1', 'value1', { namespace: ns1 }), true)
      t.equal(await cache.set('key1', 'value2', { namespace: ns2 }), true)
      t.equal(await cache.get('key1'), undefined, 'not in the default namespace')
      t.equal(await cache.get('key1', { namespace: ns1 }), 'value1')
      t.equal(await cache.get('key1', { namespace: ns2 }), 'value2')
      t.equal(await cache.replace('key1', 'value3', { namespace: uniqueName('ns3') }), false, 'replace finds nothing in another namespace')
      t.equal(await cache.add('key1', 'other', { namespace: uniqueName('ns3') }), true, 'add succeeds in another namespace')
      t.equal(await cache.delete('key1', { namespace: ns1, lockSeconds: 5 }), 'deleted')
      t.equal(await cache.get('key1', { namespace: ns1 }), undefined)
      t.equal(await cache.get('key1', { namespace: ns2 }), 'value2', 'a delete leaves other namespaces alone')
      t.equal(await cache.add('key1', 'value1', { namespace: ns1 }), false, 'locked in its namespace')
      t.equal(await cache.add('key1', 'value1'), true, 'not in the default one')
      const found = await cache.gets<string>('key1', { namespace: ns2 })
      t.equal(await cache.cas('key1', 'swapped', found!.casToken, { namespace: ns2 }), true)
      t.equal(await cache.get('key1', { namespace: ns2 }), 'swapped')
      t.equal(await cache.get('key1'), 'value1', 'cas wrote only its namespace')
    })

    t.test('delete answers deleted for a present key and missing for an absent one; deleteMulti is true either way', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ key1: 'value1', [long]: 'value2', key3: 'value3' })
      t.equal(await cache.delete('key1'), 'deleted')
      t.equal(await cache.get('key1'), undefined)
      t.equal(await cache.delete('key1'), 'missing')
      t.equal(await cache.deleteMulti([long, 'key3', 'never']), true)
      t.same(await cache.getMulti([long, 'key3']), {})
    })

    t.test('a delete lock, relative or absolute, refuses add and replace until it ends; set and incr with an initial value go through', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ relative: 1, absolute: 2, multi1: 3, multi2: 4, settable: 5, counter: 10 })
      t.equal(await cache.delete('relative', { lockSeconds: 1 }), 'deleted')
      t.equal(await cache.delete('absolute', { lockSeconds: nowSec() + 2 }), 'deleted')
      t.equal(await cache.deleteMulti(['multi1', 'multi2'], { lockSeconds: 1 }), true)
      for (const key of ['relative', 'absolute', 'multi1', 'multi2']) {
        t.equal(await cache.get(key), undefined, `${key}: gone`)
        t.equal(await cache.add(key, 'again'), false, `${key}: add refused while locked`)
        t.equal(await cache.replace(key, 'again'), false, `${key}: replace refused while locked`)
      }
      t.equal(await cache.delete('settable', { lockSeconds: 5 }), 'deleted')
      t.equal(await cache.set('settable', 'value1'), true, 'set ignores the lock')
      t.equal(await cache.get('settable'), 'value1')
      t.equal(await cache.delete('counter', { lockSeconds: 5 }), 'deleted')
      t.equal(await cache.incr('counter'), undefined, 'a locked key holds no counter')
      t.equal(await cache.incr('counter', { initialValue: 0 }), 1, 'but incr with an initial value starts one')
      await sleep(2100)
      for (const key of ['relative', 'absolute', 'multi1', 'multi2']) {
        t.equal(await cache.add(key, 'random value'), true, `${key}: add works once the lock ends`)
        t.equal(await cache.replace(key, 'random value2'), true)
        t.equal(await cache.get(key), 'random value2')
      }
    })

    t.test('deleting a locked key again answers deleted, and the last lock time wins, also a shorter one', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ key1: 'value1', key2: 'value2', key3: 'value3' })
      t.equal(await cache.delete('key1', { lockSeconds: 5 }), 'deleted')
      t.equal(await cache.delete('key1', { lockSeconds: 60 }), 'deleted')
      t.equal(await cache.delete('key1', { lockSeconds: 1 }), 'deleted')
      t.equal(await cache.deleteMulti(['key2', 'key3'], { lockSeconds: 5 }), true)
      t.equal(await cache.deleteMulti(['key2', 'key3'], { lockSeconds: 1 }), true)
      t.equal(await cache.add('key1', 'x'), false, 'still locked')
      await sleep(1100)
      t.equal(await cache.delete('key1'), 'missing', 'the last (shortest) lock has ended')
      t.equal(await cache.add('key2', 'x'), true)
      await cache.set('key4', 'value4')
      await cache.delete('key4', { lockSeconds: 60 })
      t.equal(await cache.delete('key4'), 'deleted', 'a delete without a time lifts a lock')
      t.equal(await cache.add('key4', 'again'), true)
    })

    t.test('expiry, relative and absolute, for set and setMulti: readable until it ends, gone after', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.set('relative', 'value1', { ttl: 1 }), true)
      t.equal(await cache.set('absolute', 'value1', { ttl: nowSec() + 2 }), true)
      t.same(await cache.setMulti({ m1: 'value1', [long]: 'value2' }, { ttl: 1 }), [])
      t.same(await cache.getMulti(['relative', 'absolute', 'm1', long]), { relative: 'value1', absolute: 'value1', m1: 'value1', [long]: 'value2' })
      await sleep(2100)
      t.same(await cache.getMulti(['relative', 'absolute', 'm1', long]), {})
      t.equal(await cache.set('relative', 'value1'), true, 'and can be set again')
      t.equal(await cache.get('relative'), 'value1')
    })

    t.test('fractional seconds round up to whole ones, for ttl and lockSeconds', async (t) => {
      const cache = await fresh(t)
      await cache.set('ttl', 'v', { ttl: 0.2 })
      await cache.setMulti({ multi: 'v' }, { ttl: 0.2 })
      await cache.set('locked', 'v')
      await cache.delete('locked', { lockSeconds: 0.2 })
      await sleep(400)
      t.equal(await cache.get('ttl'), 'v', 'a ttl of 0.2 s lives 1 s')
      t.equal(await cache.get('multi'), 'v')
      t.equal(await cache.add('locked', 'v'), false, 'a lock of 0.2 s holds 1 s')
      const peeked = await cache.peek('ttl')
      t.ok(peeked !== undefined && peeked.expirationTimeSec >= nowSec(), 'the expiry is a whole second ahead')
    })

    t.test('bad expirations and lock times are refused: a TypeError for no number, a RangeError for a negative one', async (t) => {
      const cache = await fresh(t)
      const stuff = 'stuff' as unknown as number
      await t.rejects(cache.set('my_key', 'my_value', { ttl: stuff }), TypeError)
      await t.rejects(cache.set('my_key', 'my_value', { ttl: -1 }), RangeError)
      await t.rejects(cache.set('my_key', 'my_value', { ttl: -0.5 }), RangeError)
      await t.rejects(cache.setMulti({ my_key: 'my_value' }, { ttl: stuff }), TypeError)
      await t.rejects(cache.setMulti({ my_key: 'my_value' }, { ttl: -0.5 }), RangeError)
      await t.rejects(cache.delete('my_key', { lockSeconds: stuff }), TypeError)
      await t.rejects(cache.delete('my_key', { lockSeconds: -1 }), RangeError)
      await t.rejects(cache.deleteMulti(['my_key', 'other_key'], { lockSeconds: -0.5 }), RangeError)
      t.equal(await cache.get('my_key'), undefined, 'nothing was written')
    })

    t.test('incr and decr of a stored number: by one, by a delta, decr capped at 0', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ one: 0, delta: 0, ten: 10, eleven: 11, five: 5 })
      t.equal(await cache.incr('one'), 1)
      t.equal(await cache.get('one'), 1)
      t.equal(await cache.incr('delta', { delta: 10 }), 10)
      t.equal(await cache.get('delta'), 10)
      t.equal(await cache.decr('ten'), 9)
      t.equal(await cache.get('ten'), 9)
      t.equal(await cache.decr('eleven', { delta: 10 }), 1)
      t.equal(await cache.decr('five', { delta: 10 }), 0, 'capped at 0')
      t.equal(await cache.get('five'), 0)
    })

    t.test('incr and decr keep the counter\'s type: a number stays a number, a bigint a bigint', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ integer: 99, long: 99n, promoted: Number.MAX_SAFE_INTEGER, bool: true })
      t.equal(await cache.incr('integer'), 100)
      t.equal(await cache.get('integer'), 100)
      t.equal(await cache.incr('long'), 100n, 'a bigint counter answers a bigint')
      t.equal(await cache.get('long'), 100n)
      t.equal(await cache.decr('long', { delta: 200 }), 0n)
      t.equal(await cache.incr('promoted'), 2n ** 53n, 'a number counter past 2^53 goes on as a bigint, exact')
      t.equal(await cache.get('promoted'), 2n ** 53n)
      t.equal(await cache.incr('bool'), undefined, 'a boolean is no counter')
      t.equal(await cache.get('bool'), true)
    })

    t.test('incr and decr of a missing key answer undefined and create nothing, unless given an initial value', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.incr('key1'), undefined)
      t.equal(await cache.decr('key1'), undefined)
      t.equal(await cache.get('key1'), undefined)
      t.equal(await cache.incr('key1', { initialValue: 5 }), 6)
      t.equal(await cache.get('key1'), 6)
      t.equal(await cache.incr('key2', { initialValue: 500, delta: 0 }), 500)
    })

    t.test('incr and decr of what is no counter answer undefined and leave it as it is', async (t) => {
      const cache = await fresh(t)
      const values = { data: 'some data', negative: -5, negativeBig: -5n, float: 1.5, digits: '0', huge: 2n ** 64n - 1n, object: { n: 1 } }
      await cache.setMulti(values)
      for (const key of Object.keys(values)) {
        t.equal(await cache.incr(key), undefined, `incr of ${key}`)
        t.equal(await cache.decr(key), undefined, `decr of ${key}`)
        t.equal(await cache.incr(key, { initialValue: 0 }), undefined, `incr of ${key} with an initial value`)
      }
      t.same(await cache.getMulti(Object.keys(values)), values, 'every value unchanged, a negative number too')
    })

    t.test('counters are 64-bit signed: an increment past 2^63 - 1 throws and changes nothing, where memcache wraps around', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ max: MAX_COUNTER, maxBig: MAX_COUNTER, two: 2 })
      await t.rejects(cache.incr('max'), CounterOverflowError)
      t.equal(await cache.get('max'), MAX_COUNTER)
      await t.rejects(cache.incr('maxBig'), CounterOverflowError)
      t.equal(await cache.get('maxBig'), MAX_COUNTER)
      await t.rejects(cache.incr('two', { delta: 2n ** 64n - 1n }), CounterOverflowError)
      t.equal(await cache.get('two'), 2)
      t.equal(cache.available, true, 'an overflow is the caller\'s, not a store failure')
      t.equal(cache.counters().errors, 0)
    })

    t.test('offsetMulti applies each delta, with an initial value for missing keys', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ key1: 5, key2: 'blue' })
      t.same(await cache.offsetMulti({ key1: 4, key2: 10, key3: -2 }, { initialValue: 0 }), { key1: 9, key2: undefined, key3: 0 })
      t.equal(await cache.get('key3'), 0)
      t.same(await cache.offsetMulti({ one: 12, two: -5, three: 0 }, { keyPrefix: 'woot', initialValue: 14 }), { one: 26, two: 9, three: 14 })
      t.same(await cache.getMulti(['one', 'two', 'three'], { keyPrefix: 'woot' }), { one: 26, two: 9, three: 14 })
    })

    t.test('bad deltas and initial values are refused before anything is sent', async (t) => {
      const cache = await fresh(t)
      await t.rejects(cache.incr('my_key', { delta: 1.5 }), RangeError)
      await t.rejects(cache.incr('my_key', { delta: -4 }), RangeError)
      await t.rejects(cache.incr('my_key', { delta: '1' as unknown as number }), TypeError)
      await t.rejects(cache.decr('my_key', { delta: -4 }), RangeError)
      await t.rejects(cache.offsetMulti({ my_key: 1 }, { initialValue: 1.5 }), RangeError)
      await t.rejects(cache.offsetMulti({ my_key: 1 }, { initialValue: -1 }), RangeError)
      await t.rejects(cache.offsetMulti({ my_key: 1.5 }), RangeError)
      t.equal(await cache.get('my_key'), undefined)
    })

    t.test('flushAll empties the namespace', async (t) => {
      const cache = await fresh(t)
      await cache.setMulti({ key1: 'value1', [long]: 'value2', key3: 'value3' })
      t.equal(await cache.flushAll(), true)
      t.same(await cache.getMulti(['key1', long, 'key3']), {})
    })

    t.test('getStats: hits, misses and items of the namespace; zero for an empty one', async (t) => {
      const cache = await fresh(t)
      t.match(await cache.getStats(), { hits: 0, misses: 0, byteHits: 0, items: 0, bytes: 0, oldestItemAge: 0 })
      await cache.set('key1', 'value1')
      await cache.set(long, 'value2')
      t.equal(await cache.get('key1'), 'value1')
      t.equal(await cache.get(long), 'value2')
      t.equal(Object.keys(await cache.getMulti(['key1', long])).length, 2)
      t.equal(await cache.get('key3'), undefined)
      t.equal(await cache.get('unknown'), undefined)
      t.equal(await cache.get('another not known'), undefined)
      t.same(await cache.getMulti(['what', 'who']), {})
      const stats = await cache.getStats()
      t.match(stats, { hits: 4, misses: 5, items: 2 })
      t.equal(stats.byteHits, 2 * ('"value1"'.length + '"value2"'.length), 'byteHits: the serialized values read')
      t.ok(stats.bytes > 0)
    })

    t.test('getStats: the oldest item\'s age is the time since its last use; peek is no use', async (t) => {
      const cache = await fresh(t)
      await cache.set('key1', 'value1')
      await sleep(1100)
      t.ok((await cache.getStats()).oldestItemAge >= 1, 'untouched for a second')
      t.equal((await cache.peek('key1'))?.value, 'value1')
      t.ok((await cache.getStats()).oldestItemAge >= 1, 'a peek does not count as a use')
      await cache.get('key1')
      t.equal((await cache.getStats()).oldestItemAge, 0, 'a read does')
      await cache.delete('key1')
      t.equal((await cache.getStats()).oldestItemAge, 0, 'an empty namespace has no oldest item')
    })

    t.test('peek answers the value with its timestamps, also for a delete-locked key, and counts as a read', async (t) => {
      const cache = await fresh(t)
      const before = nowSec()
      await cache.set('key1', { v: 1 }, { ttl: 60 })
      await cache.set('forever', 'v')
      const peeked = await cache.peek<{ v: number }>('key1')
      t.same(peeked?.value, { v: 1 })
      t.ok(peeked!.expirationTimeSec >= before + 60 && peeked!.expirationTimeSec <= nowSec() + 61, `expires at ${peeked!.expirationTimeSec}`)
      t.ok(peeked!.lastAccessTimeSec >= before - 1 && peeked!.lastAccessTimeSec <= nowSec(), `last used at ${peeked!.lastAccessTimeSec}`)
      t.equal(peeked!.deleteLockTimeSec, 0)
      t.equal((await cache.peek('forever'))?.expirationTimeSec, 0, 'no expiry: 0')
      t.equal(await cache.peek('missing'), undefined)
      await cache.delete('key1', { lockSeconds: 30 })
      const locked = await cache.peek('key1')
      t.equal(locked?.value, undefined, 'a locked key is found, without a value')
      t.ok(locked!.deleteLockTimeSec >= before + 30 && locked!.deleteLockTimeSec <= nowSec() + 31, `locked until ${locked!.deleteLockTimeSec}`)
      t.equal(await cache.get('key1'), undefined, 'get still misses it')
      await cache.setMulti({ a: 1, b: 2 }, { keyPrefix: 'p:' })
      const many = await cache.peekMulti<number>(['a', 'b', 'c'], { keyPrefix: 'p:' })
      t.same(Object.keys(many).sort(), ['a', 'b'], 'peekMulti: the keys found, without the prefix')
      t.equal(many.b?.value, 2)
      t.match(cache.counters(), { hits: 5, misses: 3 }, 'peeks count as reads: a locked key as a hit')
    })

    t.test('gets, getMulti with forCas, cas and casMulti: a token works once, and fails after any write', async (t) => {
      const cache = await fresh(t)
      await cache.set('key1', 'value1')
      const first = await cache.gets<string>('key1')
      t.equal(first?.value, 'value1')
      t.equal(await cache.cas('key1', 'value2', first!.casToken), true)
      t.equal((await cache.gets('key1'))?.value, 'value2')
      t.equal(await cache.cas('key1', 'value3', first!.casToken), false, 'the token of an older read fails')
      t.equal(await cache.get('key1'), 'value2')

      await cache.setMulti({ foo: 'foo_value', bar: 'bar_value' }, { keyPrefix: 'abc:' })
      const found = await cache.getMulti<string>(['foo', 'bar', 'missing'], { keyPrefix: 'abc:', forCas: true })
      t.same(Object.keys(found).sort(), ['bar', 'foo'])
      t.equal(found.foo?.value, 'foo_value')
      t.same(await cache.casMulti({ foo: { value: 'new foo', casToken: found.foo!.casToken }, bar: { value: 'new bar', casToken: found.bar!.casToken } }, { keyPrefix: 'abc:' }), [])
      t.same(await cache.getMulti(['foo', 'bar'], { keyPrefix: 'abc:' }), { foo: 'new foo', bar: 'new bar' })
      const again = await cache.getMulti<string>(['foo', 'bar'], { keyPrefix: 'abc:', forCas: true })
      await cache.set('abc:bar', 'written in between')
      t.same(await cache.casMulti({ foo: { value: 1, casToken: again.foo!.casToken }, bar: { value: 2, casToken: again.bar!.casToken } }, { keyPrefix: 'abc:' }),
        ['bar'], 'casMulti answers the keys not stored')
      t.same(await cache.getMulti(['foo', 'bar'], { keyPrefix: 'abc:' }), { foo: 1, bar: 'written in between' })
      await cache.delete('abc:foo', { lockSeconds: 5 })
      t.same(await cache.casMulti({ foo: { value: 3, casToken: again.foo!.casToken } }, { keyPrefix: 'abc:' }), ['foo'], 'cas of a locked key fails')
    })

    t.test('cas refuses a token that is not one', async (t) => {
      const cache = await fresh(t)
      await cache.set('key', 'v')
      await t.rejects(cache.cas('key', 'value', undefined as unknown as string), TypeError)
      await t.rejects(cache.cas('key', 'value', ['old', 1, 2] as unknown as string), TypeError)
      await t.rejects(cache.casMulti({ key: { value: 'value', casToken: 42 as unknown as string } }), TypeError)
      t.equal(await cache.get('key'), 'v')
    })

    t.test('keys are strings: any other key throws the same TypeError on every call, and is no store failure', async (t) => {
      const cache = await fresh(t)
      const key = 1234 as unknown as string
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['get', () => cache.get(key)], ['lookup', () => cache.lookup(key)], ['gets', () => cache.gets(key)], ['peek', () => cache.peek(key)],
        ['getMulti', () => cache.getMulti([key])], ['getMulti forCas', () => cache.getMulti([key], { forCas: true })], ['peekMulti', () => cache.peekMulti([key])],
        ['set', () => cache.set(key, 1)], ['add', () => cache.add(key, 1)], ['replace', () => cache.replace(key, 1)], ['cas', () => cache.cas(key, 1, 't')],
        ['delete', () => cache.delete(key)], ['deleteMulti', () => cache.deleteMulti([key])], ['incr', () => cache.incr(key)], ['decr', () => cache.decr(key)],
        ['key prefix', () => cache.getMulti(['k'], { keyPrefix: key })], ['key prefix of setMulti', () => cache.setMulti({ k: 1 }, { keyPrefix: key })],
        ['key prefix of offsetMulti', () => cache.offsetMulti({ k: 1 }, { keyPrefix: key })], ['key prefix of deleteMulti', () => cache.deleteMulti(['k'], { keyPrefix: key })],
        ['key prefix of casMulti', () => cache.casMulti({ k: { value: 1, casToken: 't' } }, { keyPrefix: key })],
        ['null', () => cache.get(null as unknown as string)], ['a tuple', () => cache.get([1, 'k'] as unknown as string)]
      ]
      for (const [what, call] of calls) {
        await t.rejects(call(), { name: 'TypeError', message: /must be a string, got/ }, what)
      }
      await t.rejects(cache.delete(key), { message: 'cache key must be a string, got number (1234)' }, 'the same words every time')
      t.equal(cache.counters().errors, 0, 'no store error counted')
      t.equal(cache.available, true, 'the breaker stays closed')
      t.equal(await cache.set('1234', 'v'), true, 'the key as a string works')
    })

    t.test('keys may be any Unicode string, with a Unicode prefix too, and longer than 250 bytes', async (t) => {
      const cache = await fresh(t)
      t.equal(await cache.set('asdf', 'foobar'), true)
      t.equal(await cache.get('asdf'), 'foobar')
      t.equal(await cache.set('\u00e9', 'foobar'), true)
      t.equal(await cache.get('é'), 'foobar', 'the same key written either way')
      const mapping = { one: 'value1', two: 'value2', three: 'value3', four: 'value4' }
      t.same(await cache.setMulti(mapping, { keyPrefix: 'é:' }), [])
      t.equal(await cache.get('é:one'), 'value1')
      t.same(await cache.getMulti(Object.keys(mapping), { keyPrefix: 'é:' }), mapping)
      const large = 'a'.repeat(500)
      t.equal(await cache.set(large, 'big key'), true)
      t.equal(await cache.get(large), 'big key')
      t.same(await cache.getMulti(['a'.repeat(240)], { keyPrefix: 'p'.repeat(20) }), {}, 'a prefix that makes a key long')
      await cache.setMulti({ ['a'.repeat(240)]: 1 }, { keyPrefix: 'p'.repeat(20) })
      t.same(await cache.getMulti(['a'.repeat(240)], { keyPrefix: 'p'.repeat(20) }), { ['a'.repeat(240)]: 1 })
    })

    t.test('values come back with their type: strings, Unicode, integers, bigints, booleans, floats, structures', async (t) => {
      const cache = await fresh(t)
      const mapping = { one: 'value1', two: 2.0, three: 3, four: 'value4', unicode: 'the valu\u00e9', long: 42n, yes: true, no: false, nested: { asdf: 1, foo: 2n, bar: 1.0 } }
      t.same(await cache.setMulti(mapping), [])
      for (const [key, value] of Object.entries(mapping)) t.equal(typeof await cache.get(key), typeof value, `${key} is a ${typeof value}`)
      t.same(await cache.getMulti(Object.keys(mapping)), mapping)
      const shared = { 'memo-bait': 'yum' }
      await cache.set('one', { shared })
      await cache.set('two', { shared })
      t.same(await cache.get('two'), { shared }, 'a sub-object shared by two values comes back whole in each')
    })

    t.test('a value is at most 1,000,000 bytes: a Buffer or string of exactly that fits, one byte more is refused', async (t) => {
      const cache = await fresh(t)
      const exact = Buffer.alloc(1_000_000, 7)
      t.equal(await cache.set('buffer', exact), true)
      t.ok(exact.equals(await cache.get<Buffer>('buffer') ?? Buffer.alloc(0)), 'and comes back byte for byte')
      await t.rejects(cache.set('buffer', Buffer.alloc(1_000_001)), ValueTooLargeError)
      await t.rejects(cache.set('my_key', 'a'.repeat(1024 * 1024)), ValueTooLargeError)
      await t.rejects(cache.setMulti({ my_key: 'a'.repeat(1024 * 1024) }), ValueTooLargeError)
      t.equal(await cache.get('my_key'), undefined)
    })

    t.test('when the store fails, every call answers memcache\'s failure value', async (t) => {
      const cache = createCache({ store: failing(await make(t)), namespace: uniqueName('ae') })
      t.equal(await cache.get('key'), undefined)
      t.same(await cache.getMulti(['foo', 'bar', 'missing']), {})
      t.same(await cache.getMulti(['foo'], { forCas: true }), {})
      t.equal(await cache.gets('key'), undefined)
      t.equal(await cache.peek('key'), undefined)
      t.equal(await cache.set('foo', 'foo_value'), false)
      t.same(await cache.setMulti({ foo: 'foo_value', bar: 'bar_value' }, { keyPrefix: 'prefix' }), ['foo', 'bar'])
      t.same(await cache.addMulti({ foo: 'foo_value', bar: 'bar_value' }), ['foo', 'bar'])
      t.same(await cache.replaceMulti({ foo: 'foo_value', bar: 'bar_value' }), ['foo', 'bar'])
      t.equal(await cache.cas('foo', 'v', 'token'), false)
      t.same(await cache.casMulti({ foo: { value: 1, casToken: 't' } }), ['foo'])
      t.equal(await cache.delete('key_to_die'), 'failed')
      t.equal(await cache.deleteMulti(['key_to_die', 'and_another']), false)
      t.equal(await cache.incr('my_key'), undefined)
      t.equal(await cache.decr('my_key', { delta: 7 }), undefined)
      t.same(await cache.offsetMulti({ one: 1, two: -1 }), { one: undefined, two: undefined })
      t.equal(await cache.flushAll(), false)
    })
  })
}
