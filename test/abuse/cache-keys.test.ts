import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import t from 'tap'
import type { Test } from 'tap'
import fc from 'fast-check'
import type { Redis } from 'ioredis'
import { createCache, MAX_KEY_BYTES, MemoryStore, RedisStore, RouteCache, type Store } from '@visitme/memcache'
import { MemoryGreetingsRepository } from '../../src/guestbook/memory-repository.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { redisReady, testRedis, uniqueName } from '../helpers/services.js'

/*
 * Keys are built from what visitors send (a book name) and from what code passes in
 * (namespaces, route keys, tags). Whatever the strings, two namespaces never share an
 * entry, a flush never reaches past its namespace, a hashed long key never meets a short
 * one, and glob characters are never a pattern. Namespaces and keys are any well-formed
 * strings, weighted towards the characters our layout and Redis's glob give a meaning;
 * strings with lone surrogates, which UTF-8 cannot carry, have a property of their own.
 */

/** Characters that mean something in our key layout, in URI escapes, or in a Redis glob. */
const SPECIAL = [':', '*', '?', '[', ']', '^', '-', '\\', '%', '/', '!', '\'', '(', ')', '~', '.', ' ', '+', '#', '{', '}', ',', '|', '\u0000', '\n']
const char = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SPECIAL) },
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })
)
/** Pieces of our layout and of its escaping: a namespace or key that imitates another's. */
const LAYOUT = fc.constantFrom(':k:', ':h:', ':k', ':h', ':stats', 'k:', 'h:', '%3A', '%3a', '%25', '%2F', '*', '\\*', '[a-z]', '[^x]', '?')
const piece: fc.Arbitrary<string> = fc.array(fc.oneof(fc.string({ unit: char, maxLength: 8 }), LAYOUT), { maxLength: 5 }).map((parts) => parts.join(''))

const bytes = (text: string) => Buffer.byteLength(text)
/** `text` padded with `fill` to at least `size` bytes. */
const padded = (text: string, fill: string, size: number) => text + fill.repeat(Math.max(0, Math.ceil((size - bytes(text)) / bytes(fill))))
/** The longest start of `text` within `size` bytes, whole code points only. */
function firstBytes (text: string, size: number): string {
  let start = ''
  for (const c of text) {
    if (bytes(start + c) > size) break
    start += c
  }
  return start
}

/** Short keys, keys around the 250-byte limit, and long ones that are hashed. */
const key: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: piece },
  fc.tuple(piece, fc.constantFrom('x', 'é', '€', '😀', '*', ':'), fc.integer({ min: MAX_KEY_BYTES - 4, max: MAX_KEY_BYTES + 4 }))
    .map(([text, fill, size]) => padded(text, fill, size)),
  fc.tuple(piece, fc.constantFrom('x', 'é', '😀'), fc.integer({ min: MAX_KEY_BYTES + 1, max: 1200 }), piece)
    .map(([text, fill, size, tail]) => padded(text, fill, size) + tail)
)

/** Two different namespaces, often one a prefix, an escaped form or a glob match of the other. */
const namespacePair: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(piece, piece),
  fc.tuple(piece, fc.constantFrom(':k', ':k:', ':h:', ':', '*', '?', '[', ']', '\\', '%', '%3A', ':stats', 'x', '/x'))
    .map(([a, suffix]): [string, string] => [a, a + suffix]),
  piece.map((a): [string, string] => [a, encodeURIComponent(a)]),
  fc.tuple(piece, piece, piece).map(([x, y, z]): [string, string] => [`${x}*${z}`, `${x}${y}${z}`]),
  fc.tuple(piece, fc.string({ unit: char, minLength: 1, maxLength: 1 }), piece).map(([x, y, z]): [string, string] => [`${x}?${z}`, `${x}${y}${z}`])
).chain(([a, b]) => fc.boolean().map((swap): [string, string] => swap ? [b, a] : [a, b]))
  .filter(([a, b]) => a !== b)

/** Runs a property; its counterexample, shrunk, is the failure message. */
async function holds<Ts extends [unknown, ...unknown[]]> (t: Test, property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  const details = await fc.check(property, { numRuns })
  const printable = (text: string) => text.replace(/[^\n\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  t.notOk(details.failed, details.failed ? printable(`${fc.defaultReportMessage(details)}\n${String(details.errorInstance)}`) : `${details.numRuns} runs`)
  if (!details.failed) t.equal(details.numRuns, numRuns, 'every run was made')
}

const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&')

async function redisKeys (client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await client.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0')
  return keys
}

interface Backend {
  store: Store
  /** How many entries have a name that starts with prefix, but for the names in `except`. */
  keysUnder: (prefix: string, except?: readonly string[]) => Promise<number>
}

/** One store per test; every key a Redis test wrote is removed when it ends. */
const backends: Record<string, (t: Test, root: string) => Promise<Backend>> = {
  memory: async () => {
    const store = new MemoryStore()
    // Counters live apart from the entries in memory: `except` has nothing to leave out.
    return { store, keysUnder: async (prefix) => (await store.census([prefix], 1_000_000)).items }
  },
  redis: async (t, root) => {
    const client = await redisReady(testRedis(t))
    t.teardown(async () => {
      const keys = await redisKeys(client, root)
      if (keys.length > 0) await client.unlink(...keys)
    })
    return {
      store: new RedisStore(client),
      keysUnder: async (prefix, except = []) => new Set((await redisKeys(client, prefix)).filter((name) => !except.includes(name))).size
    }
  }
}

for (const [kind, backend] of Object.entries(backends)) {
  t.test(`${kind} store: keys from any input`, async (t) => {
    t.test('a value written in one namespace is never visible, overwritten or deleted from another', async (t) => {
      const root = uniqueName('abuse-keys')
      const { store } = await backend(t, encodeURIComponent(root))
      const cache = createCache({ store, namespace: root, statsFlushMs: 3_600_000 })
      let run = 0
      await holds(t, fc.asyncProperty(namespacePair, fc.uniqueArray(key, { minLength: 1, maxLength: 6 }), async ([a, b], keys) => {
        const prefix = `${root}/${run++}/`
        const [inA, inB] = [cache.namespaced(prefix + a), cache.namespaced(prefix + b)]
        const values = Object.fromEntries(keys.map((k, i) => [k, `a${i}`]))
        assert.deepEqual(await inA.setMulti(values), [])
        // What each key would be called if the namespace were not escaped: it must not help either.
        const naive = keys.map((k) => `${prefix}${a}:k:${k}`)
        const imitations = naive.filter((name) => name.startsWith(`${prefix}${b}:k:`)).map((name) => name.slice(`${prefix}${b}:k:`.length))
        assert.deepEqual(await inB.getMulti([...keys, ...imitations]), {}, 'nothing of a is visible from b')
        for (const [i, k] of keys.entries()) {
          assert.equal(await inB.add(k, `b${i}`), true, 'the key is free in b')
          assert.equal(await inB.get(k), `b${i}`)
          assert.equal(await inA.get(k), `a${i}`, 'writing it in b leaves a alone')
          assert.equal(await inB.delete(k), 'deleted')
          assert.equal(await inA.get(k), `a${i}`, 'deleting it in b leaves a alone')
        }
        assert.deepEqual(await inA.getMulti(keys), values)
        await inA.flushAll()
        await inB.flushAll()
      }), 40)
      await cache.close()
    })

    t.test('flushAll empties its namespace and no other, whatever the names', async (t) => {
      const root = uniqueName('abuse-flush')
      const { store, keysUnder } = await backend(t, encodeURIComponent(root))
      const cache = createCache({ store, namespace: root, statsFlushMs: 3_600_000 })
      let run = 0
      await holds(t, fc.asyncProperty(
        namespacePair, fc.uniqueArray(key, { minLength: 1, maxLength: 5 }), fc.uniqueArray(key, { minLength: 1, maxLength: 5 }),
        async ([a, b], keysA, keysB) => {
          const prefix = `${root}/${run++}/`
          const [inA, inB] = [cache.namespaced(prefix + a), cache.namespaced(prefix + b)]
          // b also holds keys that spell out where a's keys are stored.
          keysB = [...new Set([...keysB, ...keysA.map((k) => `${encodeURIComponent(prefix + a)}:k:${k}`)])]
          const valuesA = Object.fromEntries(keysA.map((k, i) => [k, `a${i}`]))
          const valuesB = Object.fromEntries(keysB.map((k, i) => [k, `b${i}`]))
          assert.deepEqual(await inA.setMulti(valuesA), [])
          assert.deepEqual(await inB.setMulti(valuesB), [])
          // The census scans with the same escaped pattern as the flush.
          assert.equal((await inB.getStats()).items, keysB.length, 'b counts its own keys only')
          assert.equal((await inA.getStats()).items, keysA.length, 'a counts its own keys only')

          assert.equal(await inA.flushAll(), true)
          assert.deepEqual(await inA.getMulti(keysA), {}, 'a is empty, long keys too')
          assert.deepEqual(await inB.getMulti(keysB), valuesB, 'b is untouched')
          assert.equal((await inB.getStats()).items, keysB.length)
          assert.equal((await inA.getStats()).items, 0)

          assert.equal(await inB.flushAll(), true)
          assert.deepEqual(await inB.getMulti(keysB), {})
          // Nothing is left behind under either name but their counters.
          const counters = [a, b].map((ns) => `${encodeURIComponent(prefix + ns)}:stats`)
          assert.equal(await keysUnder(encodeURIComponent(prefix), counters), 0, 'no entry survives the flushes')
        }), 40)
      await cache.close()
    })

    t.test('long keys are hashed apart from each other and from every short key', async (t) => {
      const root = uniqueName('abuse-long')
      const { store } = await backend(t, encodeURIComponent(root))
      const cache = createCache({ store, namespace: root, statsFlushMs: 3_600_000 })
      const hashOf = (k: string) => createHash('sha256').update(k).digest('base64url')
      let run = 0
      await holds(t, fc.asyncProperty(
        fc.tuple(piece, fc.constantFrom('x', 'é', '😀')), fc.uniqueArray(piece, { minLength: 1, maxLength: 4 }), fc.array(key, { maxLength: 3 }),
        async ([head, fill], tails, others) => {
          const inNs = cache.namespaced(`${root}/${run++}`)
          // Long keys that share their first 250 bytes and more, and the short keys that imitate their hashes.
          const shared = padded(head, fill, MAX_KEY_BYTES + 1)
          const long = tails.map((tail) => shared + tail)
          const imitations = long.flatMap((k) => [hashOf(k), `h:${hashOf(k)}`, `:h:${hashOf(k)}`, firstBytes(k, MAX_KEY_BYTES)])
          const keys = [...new Set([...long, ...imitations, ...others])]
          const values = Object.fromEntries(keys.map((k, i) => [k, i]))
          assert.deepEqual(await inNs.setMulti(values), [])
          assert.deepEqual(await inNs.getMulti(keys), values, 'every key keeps its own value')
          assert.equal((await inNs.getStats()).items, keys.length, 'one entry per key')
          for (const k of long) assert.equal(await inNs.delete(k), 'deleted')
          const rest = keys.filter((k) => !long.includes(k))
          assert.deepEqual(await inNs.getMulti(keys), Object.fromEntries(rest.map((k) => [k, values[k]])), 'deleting the long keys removed only them')
          await inNs.flushAll()
        }), 40)
      await cache.close()
    })

    t.test('keys that are not well-formed UTF-16 (lone surrogates) are refused or kept apart, never merged', async (t) => {
      const root = uniqueName('abuse-surrogates')
      const { store } = await backend(t, encodeURIComponent(root))
      const cache = createCache({ store, namespace: root, statsFlushMs: 3_600_000 })
      let run = 0
      await holds(t, fc.asyncProperty(piece, fc.boolean(), async (base, long) => {
        const inNs = cache.namespaced(`${root}/${run++}`)
        const stem = long ? padded(base, 'x', MAX_KEY_BYTES + 1) : base
        // Three different strings that UTF-8 encodes alike: a lone high surrogate, a lone low one, and U+FFFD.
        const keys = [`${stem}\ud800`, `${stem}\udc00`, `${stem}\ufffd`]
        const values = Object.fromEntries(keys.map((k, i) => [k, i]))
        let refused = false
        try {
          assert.deepEqual(await inNs.setMulti(values), [])
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err
          refused = true
        }
        if (!refused) assert.deepEqual(await inNs.getMulti(keys), values, 'each key keeps its own value')
        await inNs.flushAll()
      }), 30)
      await cache.close()
    })

    t.test('a flush prefix with glob characters is a prefix, never a pattern', async (t) => {
      const root = uniqueName('abuse-glob')
      const { store, keysUnder } = await backend(t, root)
      let run = 0
      await holds(t, fc.asyncProperty(piece, fc.uniqueArray(piece, { minLength: 1, maxLength: 8 }), async (prefix, names) => {
        const base = `${root}/${run++}/`
        // Some names start with the prefix, some only match it as a pattern would, the rest are anything.
        const asPattern = prefix.replace(/\*/g, 'zz').replace(/\?/g, 'q').replace(/\[([^\]]*)\]/g, (_, set: string) => set.slice(0, 1))
        const keys = [...new Set([
          ...names.map((name) => prefix + name), asPattern, `${asPattern}tail`, ...names,
          // The whole prefix, but not at the start.
          ...names.map((name) => `${name}${base}${prefix}`)
        ])].map((name) => base + name)
        assert.deepEqual(await store.write('set', keys.map((k) => ({ key: k, value: '"v"', casToken: 't', ttlMs: 0 }))), keys.map(() => true))
        const inside = keys.filter((k) => k.startsWith(base + prefix))
        assert.equal((await store.census([base + prefix], 1_000_000)).items, inside.length, 'the census counts the keys under the prefix')
        await store.flush(base + prefix)
        const found = await store.get(keys)
        assert.deepEqual(keys.filter((_k, i) => found[i] !== undefined), keys.filter((k) => !inside.includes(k)), 'exactly the keys under the prefix are gone')
        await store.flush(base)
        assert.equal(await keysUnder(base), 0)
      }), 50)
    })

    t.test('route keys and tags never reach each other', async (t) => {
      const root = uniqueName('abuse-routes')
      const { store } = await backend(t, encodeURIComponent(root))
      const cache = createCache({ store, namespace: root, statsFlushMs: 3_600_000 })
      let run = 0
      const routeCase = fc.tuple(fc.uniqueArray(key, { minLength: 2, maxLength: 4 }), piece).filter(([keys, tag]) =>
        !keys.includes(`t:${tag}`) && !keys.some((k) => tag === k || tag === `r:${k}`))
      await holds(t, fc.asyncProperty(routeCase, async ([keys, tag]) => {
        const routes = new RouteCache(cache.namespaced(`${root}/${run++}`))
        // The first key is tagged; the others are untagged pages, and so is one named like the tag's counter.
        const [tagged, ...others] = keys as [string, ...string[]]
        const pages = [tagged, ...others, `t:${tag}`]
        for (const page of pages) {
          const { ticket } = await routes.lookup(page, page === tagged ? [tag] : [])
          assert.equal(await routes.store(ticket, { status: 200, headers: {}, body: `page ${page}` }, 60), true)
        }
        for (const page of pages) assert.equal((await routes.lookup(page, page === tagged ? [tag] : [])).hit?.body, `page ${page}`)
        // Invalidating a key, or a tag named like a key, drops only that.
        assert.equal(await routes.invalidate(others[0]!), true)
        assert.equal(await routes.invalidateTags(`r:${tagged}`, tagged, ...others), true)
        assert.equal((await routes.lookup(others[0]!, [])).hit, undefined)
        assert.equal((await routes.lookup(tagged, [tag])).hit?.body, `page ${tagged}`, 'the tagged page survives other keys and tags')
        assert.equal((await routes.lookup(`t:${tag}`, [])).hit?.body, `page t:${tag}`)
        assert.equal(await routes.invalidateTags(tag), true)
        assert.equal((await routes.lookup(tagged, [tag])).hit, undefined, 'its own tag drops it')
        assert.equal((await routes.lookup(`t:${tag}`, [])).hit?.body, `page t:${tag}`, 'and only it: the page named like the tag stays')
        await routes.cache.flushAll()
      }), 40)
      await cache.close()
    })
  })
}

/** Book names that differ a little: by a suffix, in Unicode normalization, in case, or past 250 bytes. */
const bookPair: fc.Arbitrary<[string, string]> = fc.oneof(
  fc.tuple(piece, piece),
  piece.map((a): [string, string] => [a, `${a}:greetings`]),
  fc.tuple(piece, fc.constantFrom('é', 'Å', 'ñ', 'ﬁ', '①')).map(([a, c]): [string, string] => [a + c.normalize('NFC'), a + c.normalize('NFKD')]),
  piece.map((a): [string, string] => [`${a}x`, `${a}X`]),
  fc.tuple(fc.constantFrom('😀', '€', 'é'), fc.constantFrom('a', 'b')).map(([fill, last]): [string, string] => [fill.repeat(90) + last, fill.repeat(90) + 'c'])
)

t.test('guestbook: books with near names never share cached greetings', async (t) => {
  for (const [label, redis] of [['in-process cache', false], ['Redis', true]] as const) {
    t.test(label, async (t) => {
      const greetings = new MemoryGreetingsRepository()
      const app = await buildTestApp(t, testConfig(), { greetings, ...(redis ? { redis: await redisReady(testRedis(t)) } : {}) })
      t.equal(app.cache.store.kind, redis ? 'redis' : 'memory')
      let run = 0
      await holds(t, fc.asyncProperty(bookPair, async ([a, b]) => {
        // Within the 100 characters a name may have, and apart from every other run's books.
        const name = (book: string) => Array.from(`${run} ${book}`).slice(0, 100).join('')
        const [bookA, bookB] = [name(a), name(b)]
        run++
        fc.pre(bookA !== bookB)
        const marker = `only in book a, run ${run}`
        await greetings.add(bookA, { content: marker, date: new Date() })
        const pageA = await app.inject(`/guestbook?guestbook_name=${encodeURIComponent(bookA)}`)
        assert.ok(pageA.body.includes(marker), 'a shows its greeting, and has it cached')
        const pageB = await app.inject(`/guestbook?guestbook_name=${encodeURIComponent(bookB)}`)
        assert.equal(pageB.statusCode, 200)
        assert.doesNotMatch(pageB.body, /class="greeting"/, 'b shows no greeting: nothing of a\'s cached page')
      }), 40)
    })
  }
})
