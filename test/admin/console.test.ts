import t from 'tap'
import { createRedisClient, storeKey } from '@visitme/memcache'
import { visitsNamespace } from '../../src/visits/cache-keys.js'
import { freePort } from '../helpers/ports.js'
import { adminApp, auditLines, bearer, type Backend } from './admin-app.js'

const json = { ...bearer, accept: 'application/json' }

/** Hits of the last two minutes: a test may cross a minute's end. */
const recentHits = (history: Array<{ hits: number }>): number => history.slice(-2).reduce((sum, minute) => sum + minute.hits, 0)

for (const backend of ['memory', 'redis'] as const satisfies Backend[]) {
  t.test(`on ${backend}: find a key the app set, with its type, size and TTL left; long keys by their hash`, async (t) => {
    const { app } = await adminApp(t, { backend })
    const namespace = `${app.cache.namespace}/things`
    const things = app.cache.namespaced(namespace)
    await things.set('profile', { name: 'Ada', tags: ['a', 'b'] }, { ttl: 100 })
    const found = (await app.inject({ url: `/admin/key?namespace=${encodeURIComponent(namespace)}&key=profile`, headers: json })).json()
    t.equal(found.found, true)
    t.equal(found.type, 'object')
    t.equal(found.text, JSON.stringify({ name: 'Ada', tags: ['a', 'b'] }, null, 2))
    t.equal(found.storedBytes, Buffer.byteLength(JSON.stringify({ name: 'Ada', tags: ['a', 'b'] })))
    t.ok(found.ttlLeft > 90 && found.ttlLeft <= 100, `TTL left ${found.ttlLeft as number}`)
    t.same(found.edit, { type: 'json', text: found.text })
    t.equal(found.storeKey, storeKey('profile', namespace))

    const long = 'k'.repeat(300)
    await things.set(long, 42)
    const hashed = (await app.inject({ url: `/admin/key?namespace=${encodeURIComponent(namespace)}&key=${long}`, headers: json })).json()
    t.equal(hashed.found, true)
    t.equal(hashed.hashed, true)
    t.equal(hashed.storeKey, storeKey(long, namespace))
    t.match(hashed.storeKey, ':h:')
    t.equal(hashed.type, 'number')
    t.equal(hashed.ttlLeft, undefined, 'no expiry')

    const missing = (await app.inject({ url: `/admin/key?namespace=${encodeURIComponent(namespace)}&key=nothing`, headers: json })).json()
    t.equal(missing.found, false)

    // Looking is not using: the app's hit ratio is the app's.
    const before = app.cache.counters(namespace)
    t.same([before.hits, before.misses], [0, 0], 'the console\'s reads are not counted')
  })

  t.test(`on ${backend}: edits are typed and seen through the cache API; a bad value changes nothing`, async (t) => {
    const { app, lines } = await adminApp(t, { backend })
    const namespace = `${app.cache.namespace}/edit`
    const cache = app.cache.namespaced(namespace)
    const set = async (key: string, type: string, value: string, ttl = 0) =>
      await app.inject({ method: 'POST', url: '/admin/key', headers: json, payload: { namespace, key, type, value, ttl } })
    t.equal((await set('n', 'number', ' 12.5 ')).statusCode, 200)
    t.equal(await cache.get('n'), 12.5)
    t.equal((await set('j', 'json', '{"a":[1,2,{"b":null}]}', 60)).statusCode, 200)
    t.same(await cache.get('j'), { a: [1, 2, { b: null }] })
    const peeked = await cache.peek('j')
    t.ok(peeked!.expirationTimeSec > Date.now() / 1000 + 50, 'the TTL was set')
    t.equal((await set('s', 'string', '42')).statusCode, 200)
    t.equal(await cache.get('s'), '42', 'a string stays a string, digits or not')
    const long = 'é'.repeat(200)
    t.equal((await set(long, 'string', 'long key')).statusCode, 200)
    t.equal(await cache.get(long), 'long key', 'a long key written by the console is the app\'s long key')

    const badNumber = await set('n', 'number', 'twelve')
    t.equal(badNumber.statusCode, 400)
    t.match(badNumber.json().message, 'is not a number')
    t.equal((await set('j', 'json', '{oops')).statusCode, 400)
    t.equal(await cache.get('n'), 12.5, 'unchanged')
    t.same(await cache.get('j'), { a: [1, 2, { b: null }] }, 'unchanged')
    t.equal((await set('n', 'date', '1')).statusCode, 400, 'a type the form does not offer')

    const audits = auditLines(lines)
    t.equal(audits.length, 4, 'one audit line per change, none for refused ones')
    t.match(audits[0], { who: 'token (bearer)', via: 'bearer', action: 'set', namespace, key: 'n', type: 'number', ttl: 0, at: /^\d{4}-\d\d-\d\dT/ })
    t.match(audits[1], { action: 'set', key: 'j', ttl: 60 })
  })

  t.test(`on ${backend}: delete, with a delete lock; flush one namespace, confirmed, and no other`, async (t) => {
    const { app, lines } = await adminApp(t, { backend })
    const [a, b] = [`${app.cache.namespace}/a`, `${app.cache.namespace}/b`]
    await app.cache.set('x', 1, { namespace: a })
    await app.cache.set('y', 2, { namespace: a })
    await app.cache.set('x', 3, { namespace: b })

    const del = await app.inject({ method: 'POST', url: '/admin/key/delete', headers: json, payload: { namespace: a, key: 'x', lockSeconds: 30 } })
    t.same(del.json(), { ok: true, result: 'deleted' })
    t.equal(await app.cache.get('x', { namespace: a }), undefined)
    t.equal(await app.cache.add('x', 9, { namespace: a }), false, 'add() refused while the delete lock holds')
    const locked = (await app.inject({ url: `/admin/key?namespace=${encodeURIComponent(a)}&key=x`, headers: json })).json()
    t.equal(locked.found, true)
    t.ok(locked.lockedUntil, 'the page says it is delete-locked')
    const again = await app.inject({ method: 'POST', url: '/admin/key/delete', headers: json, payload: { namespace: a, key: 'nothing' } })
    t.same(again.json(), { ok: true, result: 'missing' })

    const unconfirmed = await app.inject({ method: 'POST', url: '/admin/flush', headers: json, payload: { namespace: a, confirm: b } })
    t.equal(unconfirmed.statusCode, 400)
    t.equal(await app.cache.get('y', { namespace: a }), 2, 'not flushed without the confirmation')
    const flushed = await app.inject({ method: 'POST', url: '/admin/flush', headers: json, payload: { namespace: a, confirm: a } })
    t.equal(flushed.statusCode, 200)
    t.equal(await app.cache.get('y', { namespace: a }), undefined)
    t.equal(await app.cache.get('x', { namespace: b }), 3, 'the other namespace is untouched')

    t.same(auditLines(lines).map((line) => [line.action, line.namespace, line.result]), [['delete', a, 'deleted'], ['delete', a, 'missing'], ['flush', a, undefined]])
  })

  t.test(`on ${backend}: the overview sums namespaces, keeps minutes, ranks hot keys, and shows the server`, async (t) => {
    const { app, config } = await adminApp(t, { backend })
    const visits = visitsNamespace(config.cacheNamespace)
    const hot = app.cache.namespaced(`${app.cache.namespace}/hot`)
    await hot.set('hammered', 'h')
    await hot.set('quiet', 'q')
    for (let i = 0; i < 3000; i++) await hot.get('hammered')
    for (let i = 0; i < 20; i++) await hot.get('quiet')
    const overview = (await app.inject({ url: '/admin/', headers: json })).json()
    const row = overview.namespaces.find((r: { namespace: string }) => r.namespace === hot.namespace)
    t.match(row, { hits: 3020, misses: 0, errors: 0, items: 2, hitRatio: 1 })
    t.ok(row.bytes > 0)
    t.ok(overview.namespaces.some((r: { namespace: string }) => r.namespace === visits), 'the features\' namespaces are listed before any read')
    t.equal(overview.hotKeys.keys[0].key, 'hammered', 'the hammered key leads the hot keys')
    t.equal(overview.hotKeys.keys[0].namespace, hot.namespace)
    t.ok(overview.hotKeys.keys[0].share > 0.9, `share ${overview.hotKeys.keys[0].share as number}`)
    // Sampled one in 50: the estimate is within a generous band of the 3,001 operations.
    t.ok(overview.hotKeys.keys[0].operations > 1500 && overview.hotKeys.keys[0].operations < 6000, `≈ ${overview.hotKeys.keys[0].operations as number}`)
    t.ok(recentHits(overview.history) >= 3020, 'the last minutes hold the reads')
    t.equal(overview.history.length, 60)
    if (backend === 'redis') {
      t.equal(overview.servers.length, 1)
      t.match(overview.servers[0], { version: /^\d+\.\d+/, maxMemoryPolicy: String, usedMemory: Number, evictedKeys: Number, connectedClients: Number })
    } else {
      t.same(overview.servers, [{ server: 'embedded' }])
    }
    const chartOf = (await app.inject({ url: `/admin/?namespace=${encodeURIComponent(visits)}`, headers: json })).json()
    t.equal(chartOf.history.at(-1).hits, 0, 'the history of one namespace leaves the others out')

    const page = await app.inject({ url: '/admin/', headers: bearer })
    t.equal(page.statusCode, 200)
    t.match(page.body, /<svg [^>]*aria-label="Hit ratio \(line\) and reads per minute \(bars\), \d\d:\d\d to \d\d:\d\d UTC"/)
    t.match(page.body, /<text [^>]*text-anchor="middle">\d\d:\d\d<\/text>/, 'the time axis is labelled')
    t.match(page.body, '>hammered</a>')
    t.match(page.body, backend === 'redis' ? 'Eviction policy' : 'The cache lives in this process')
  })

  t.test(`on ${backend}: values and keys are escaped and cut to a size, with their real size`, async (t) => {
    const { app } = await adminApp(t, { backend })
    const namespace = `${app.cache.namespace}/<b>ns</b>`
    const evil = '<script>alert(1)</script>'
    await app.cache.set(evil, `${evil}${'x'.repeat(20_000)}`, { namespace })
    const url = `/admin/key?${new URLSearchParams({ namespace, key: evil }).toString()}`
    const page = await app.inject({ url, headers: bearer })
    t.equal(page.statusCode, 200)
    t.notMatch(page.body, '<script>', 'nothing of the value or key is markup')
    t.notMatch(page.body, '<b>ns</b>')
    t.match(page.body, '&lt;script&gt;alert(1)&lt;/script&gt;')
    t.match(page.body, 'Shown: the first 10,000 of 20,025 characters.')
    t.match(page.body, '20,027 bytes as stored', 'the stored size: the string as JSON')
    const overview = await app.inject({ url: '/admin/', headers: bearer })
    t.notMatch(overview.body, '<b>ns</b>')
  })
}

t.test('on redis: every instance records, console or not, and the console sums them all', async (t) => {
  const one = await adminApp(t, { backend: 'redis' })
  // The public service: no console of its own, the same Redis and namespace.
  const two = await adminApp(t, { backend: 'redis', config: { cacheNamespace: one.config.cacheNamespace, admin: undefined } })
  t.equal((await two.app.inject({ url: '/admin/', headers: json })).statusCode, 404, 'no console on the second')
  const namespace = `${one.config.cacheNamespace}/shared`
  await one.app.cache.set('k', 1, { namespace })
  for (let i = 0; i < 1000; i++) await one.app.cache.get('k', { namespace })
  for (let i = 0; i < 1000; i++) await two.app.cache.get('k', { namespace })
  // The second instance sends what it recorded every few seconds, and when it stops.
  await two.app.close()
  const seen = (await one.app.inject({ url: '/admin/', headers: json })).json()
  t.match(seen.namespaces.find((r: { namespace: string }) => r.namespace === namespace), { hits: 2000 })
  t.ok(recentHits(seen.history) >= 2000, 'the minutes add both instances')
  t.equal(seen.hotKeys.keys[0].key, 'k')
  t.ok(seen.hotKeys.keys[0].operations > 1000, `≈ ${seen.hotKeys.keys[0].operations as number} from both`)
  t.equal(seen.sharedHistory, true)
})

t.test('with Redis down the console answers at once and honestly: 503 for changes, the page says so', async (t) => {
  const client = createRedisClient({ host: '127.0.0.1', port: await freePort(), commandTimeoutMs: 500, connectTimeoutMs: 500 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const { app, lines } = await adminApp(t, { deps: { redis: client } })
  const namespace = `${app.cache.namespace}/down`
  const found = await app.inject({ url: `/admin/key?namespace=${encodeURIComponent(namespace)}&key=k`, headers: json })
  t.equal(found.statusCode, 503)
  const page = await app.inject({ url: `/admin/key?namespace=${encodeURIComponent(namespace)}&key=k`, headers: bearer })
  t.match(page.body, 'The cache did not answer.')
  const set = await app.inject({ method: 'POST', url: '/admin/key', headers: json, payload: { namespace, key: 'k', type: 'string', value: 'v' } })
  t.equal(set.statusCode, 503)
  t.match(set.json().message, 'Nothing was changed')
  const flush = await app.inject({ method: 'POST', url: '/admin/flush', headers: json, payload: { namespace, confirm: namespace } })
  t.equal(flush.statusCode, 503)
  t.same(auditLines(lines), [], 'nothing changed, nothing audited')
  const overview = await app.inject({ url: '/admin/', headers: json })
  t.equal(overview.statusCode, 200, 'the overview still answers')
  t.match(overview.json(), { servers: [{ error: String }], hotKeys: null, history: null })
  const overviewPage = await app.inject({ url: '/admin/', headers: bearer })
  t.equal(overviewPage.statusCode, 200)
  t.match(overviewPage.body, 'The history could not be read: Redis did not answer.')
  t.match(overviewPage.body, 'Not answering: ')
})
