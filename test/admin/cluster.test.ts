import t from 'tap'
import { clientReady, createRedisClient } from '@visitme/memcache'
import { TestRedisCluster } from '../helpers/redis-server.js'
import { adminApp, bearer } from './admin-app.js'

const cluster = await TestRedisCluster.start(t)

t.test('on a cluster: Redis is shown per primary, and the minutes and hot keys are kept (one slot for the console\'s keys)', async (t) => {
  const client = createRedisClient({ ...cluster.endpoint, commandTimeoutMs: 1000, connectTimeoutMs: 2000, cluster: true })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await clientReady(client)
  const { app } = await adminApp(t, { deps: { redis: client } })
  const namespace = `${app.cache.namespace}/spread`
  // Keys on every primary.
  for (let i = 0; i < 30; i++) await app.cache.set(`key-${i}`, i, { namespace })
  for (let i = 0; i < 2000; i++) await app.cache.get('key-7', { namespace })
  const overview = (await app.inject({ url: '/admin/', headers: { ...bearer, accept: 'application/json' } })).json()
  t.equal(overview.servers.length, 3, 'one row per primary')
  for (const server of overview.servers) t.match(server, { server: /^127\.0\.0\.1:\d+$/, version: /^\d+\./, usedMemory: Number, maxMemoryPolicy: String })
  t.same(new Set(overview.servers.map((s: { server: string }) => s.server)).size, 3)
  t.match(overview.namespaces.find((r: { namespace: string }) => r.namespace === namespace), { items: 30, hits: 2000 })
  t.equal(overview.hotKeys.keys[0].key, 'key-7')
  t.ok(overview.history.slice(-2).reduce((sum: number, m: { hits: number }) => sum + m.hits, 0) >= 2000)
  const flushed = await app.inject({ method: 'POST', url: '/admin/flush', headers: { ...bearer, accept: 'application/json' }, payload: { namespace, confirm: namespace } })
  t.equal(flushed.statusCode, 200)
  t.equal(await app.cache.get('key-3', { namespace }), undefined, 'flushed on every primary')
})
