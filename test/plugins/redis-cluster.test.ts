import t, { type Test } from 'tap'
import { Cluster, Redis } from 'ioredis'
import { RedisStore, type RedisClient } from '@visitme/memcache'
import type { RedisConnection } from '../../src/config.js'
import { clientReady, createRedisClient } from '@visitme/memcache'
import { visitsNamespace } from '../../src/visits/cache-keys.js'
import { storeContract } from '@visitme/memcache/contract'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { TestRedisCluster, TestRedisServer } from '../helpers/redis-server.js'
import { timed, waitFor } from '../helpers/wait.js'

const cluster = await TestRedisCluster.start(t)
const connection = (commandTimeoutMs = 1000): RedisConnection =>
  ({ ...cluster.endpoint, commandTimeoutMs, connectTimeoutMs: 2000, cluster: true })

async function clusterClient (t: Test): Promise<RedisClient> {
  const client = createRedisClient(connection())
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await clientReady(client)
  return client
}

/** How many keys under the prefix each node holds, asked of the nodes themselves. */
async function keysPerNode (prefix: string): Promise<number[]> {
  return await Promise.all(cluster.nodes.map(async (node) => {
    const admin = new Redis({ host: '127.0.0.1', port: node.port })
    try {
      return (await admin.keys(`${prefix}*`)).length
    } finally {
      admin.disconnect()
    }
  }))
}

// The whole memcache contract, on keys spread over three primaries.
storeContract(t, 'redis cluster', {
  make: async (t) => new RedisStore(await clusterClient(t)),
  peer: async (t) => new RedisStore(await clusterClient(t))
})

t.test('on a cluster: pages are cached, and stats and flushAll cover every node', async (t) => {
  const config = testConfig({ redis: connection() })
  const app = await buildTestApp(t, config)
  const visit = async () => await app.inject({ url: '/', headers: { 'user-agent': 'cluster-visitor' } })
  t.equal((await visit()).headers['x-cache'], 'miss')
  t.equal((await visit()).headers['x-cache'], 'hit')
  t.ok(app.redis instanceof Cluster, 'REDIS_CLUSTER made a cluster client')

  const cache = app.cache.namespaced(`${config.cacheNamespace}/spread`)
  const values = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`key-${i}`, i]))
  t.same(await cache.setMulti(values), [], 'every key stored in one call across nodes')
  t.same(await cache.getMulti(Object.keys(values)), values, 'and read back in one call')
  const prefix = `${encodeURIComponent(`${config.cacheNamespace}/spread`)}:k:`
  const spread = await keysPerNode(prefix)
  t.equal(spread.reduce((a, b) => a + b), 60)
  t.ok(spread.filter((n) => n > 0).length >= 2, `keys live on several primaries: ${spread.join(', ')}`)

  const stats = await cache.getStats()
  t.equal(stats.items, 60, 'items are counted on every node')
  t.ok(stats.bytes > 0)
  t.equal(stats.hits, 60)

  t.equal(await cache.flushAll(), true)
  t.same(await keysPerNode(prefix), [0, 0, 0], 'flushAll reached every node')
  t.equal((await visit()).headers['x-cache'], 'hit', 'and left other namespaces alone')
})

t.test('on a cluster the write budget is shared through Redis', async (t) => {
  const config = testConfig({ redis: connection(), rateLimitWrites: 2 })
  const first = await buildTestApp(t, config)
  const second = await buildTestApp(t, config)
  const statuses = []
  for (const [i, app] of [first, second, first].entries()) {
    statuses.push((await app.inject({ url: '/', headers: { 'user-agent': `writer-${i}`, accept: 'application/json' } })).statusCode)
  }
  t.same(statuses, [200, 200, 429], 'the third visit stored from one address, across two instances, is refused')
})

t.test('a primary down: pages are served within the bound, and the cache comes back when it rejoins', async (t) => {
  const commandTimeoutMs = 300
  const { logger, lines } = capturingLogger()
  const config = testConfig({ redis: connection(commandTimeoutMs) })
  const app = await buildTestApp(t, config, { loggerInstance: logger })
  const visit = async () => await timed(async () => await app.inject({ url: '/', headers: { 'user-agent': 'steady' } }))
  await visit()
  t.equal((await visit()).value.headers['x-cache'], 'hit')

  // The node holding the visits list goes away.
  const holders = await keysPerNode(encodeURIComponent(visitsNamespace(config.cacheNamespace)))
  const holder = cluster.nodes[holders.findIndex((n) => n > 0)]!
  await holder.stop()
  t.teardown(async () => { if (!(await holder.answers())) await holder.restart() })

  const slowest = { ms: 0 }
  for (let i = 0; i < 20; i++) {
    const { value: page, ms } = await visit()
    t.equal(page.statusCode, 200)
    slowest.ms = Math.max(slowest.ms, ms)
  }
  // A page makes at most two cache calls before it gives up on the cache.
  t.ok(slowest.ms < 2 * commandTimeoutMs + 500, `the slowest page took ${Math.round(slowest.ms)} ms with a primary down`)
  t.notOk(lines().some((l) => l.severity === 'ERROR' || l.severity === 'CRITICAL'), 'no error logged for a cache outage')

  await holder.restart()
  await cluster.settled()
  const back = Date.now()
  await waitFor('hits after the node rejoined', async () => (await visit()).value.headers['x-cache'] === 'hit', 15_000)
  t.comment(`hits again ${Date.now() - back} ms after the cluster reported ok`)
})

t.test('REDIS_CLUSTER set wrong either way: one warning that says which way', async (t) => {
  const standalone = await TestRedisServer.start(t)
  const wrong = [
    { redis: { ...connection(), host: '127.0.0.1', port: standalone.port }, hint: /REDIS_CLUSTER=true but the instance is not a cluster/ },
    { redis: { ...connection(), cluster: false }, hint: /set REDIS_CLUSTER=true/ }
  ]
  for (const { redis, hint } of wrong) {
    const { logger, lines } = capturingLogger()
    const app = await buildTestApp(t, testConfig({ redis }), { loggerInstance: logger })
    await waitFor('the warning', () => lines().some((l) => hint.test(String(l.hint))))
    t.equal((await app.inject({ url: '/', headers: { 'user-agent': 'x' } })).statusCode, 200, 'pages are served all the same')
    t.equal(lines().filter((l) => hint.test(String(l.hint))).length, 1, `one line: ${String(lines().find((l) => hint.test(String(l.hint)))?.hint)}`)
  }
})
