import t from 'tap'
import { recentVisitsKey, visitsNamespace } from '../../src/visits/cache-keys.js'
import { adminApp, bearer, type Backend } from './admin-app.js'

const json = { ...bearer, accept: 'application/json' }

for (const backend of ['memory', 'redis'] as const satisfies Backend[]) {
  t.test(`on ${backend}: the visits page's list, shown as stored and overwritten from the console: the page rebuilds it`, async (t) => {
    const { app, config } = await adminApp(t, { backend })
    const namespace = visitsNamespace(config.cacheNamespace)
    const key = recentVisitsKey(config.visits.collection)
    t.equal((await app.inject({ url: '/', headers: { 'user-agent': 'A' } })).statusCode, 200)
    const found = (await app.inject({ url: `/admin/key?${new URLSearchParams({ namespace, key }).toString()}`, headers: json })).json()
    t.match(found, { found: true, type: 'array' })
    t.match(found.text, '127.0.0.0: A', 'its items, as the store keeps them')
    const set = await app.inject({ method: 'POST', url: '/admin/key', headers: json, payload: { namespace, key, type: 'string', value: 'not a list' } })
    t.equal(set.statusCode, 200)
    for (const ua of ['A', 'B']) {
      const page = await app.inject({ url: '/', headers: { 'user-agent': ua, accept: 'application/json' } })
      t.equal(page.statusCode, 200, `${ua} is served`)
      t.equal((page.json() as { visits: Array<{ visitor: string }> }).visits[0]!.visitor, `127.0.0.0: ${ua}`)
    }
  })
}
