import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../src/config.js'
import { recentVisitsKey, visitsNamespace } from '../../src/visits/cache-keys.js'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { startServer } from '../helpers/server-process.js'
import { emulatorHost, redisTarget, testFirestore, uniqueName } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'

interface Instance { app: FastifyInstance, repository: FirestoreVisitsRepository }

/** Two instances of the service: each its own Redis connections and Firestore client, sharing both backends. */
async function twoInstances (t: Test, config: Config): Promise<[Instance, Instance]> {
  const make = async (): Promise<Instance> => {
    const repository = new FirestoreVisitsRepository(await testFirestore(t), { collection: config.visits.collection, timeoutMs: 5000, shards: config.visits.shards })
    await repository.ping()
    return { app: await buildTestApp(t, config, { repository }), repository }
  }
  return [await make(), await make()]
}

const visit = async (app: FastifyInstance, userAgent: string) =>
  await app.inject({ url: '/', headers: { 'user-agent': userAgent, accept: 'application/json' } })

/** The cached list as the store holds it, and Firestore's latest, as comparable rows. */
async function listAndTruth (config: Config, { app, repository }: Instance): Promise<{ cached: string[], truth: string[] }> {
  const list = await app.cache.namespaced(visitsNamespace(config.cacheNamespace)).listGet<string>(recentVisitsKey(config.visits.collection))
  const cached = list.status === 'ready' ? list.items.map((i) => `${i.id} ${new Date(i.order).toISOString()} ${i.value}`) : [list.status]
  const truth = (await repository.latest(config.visits.limit)).map((v) => `${v.id} ${v.timestamp.toISOString()} ${v.visitor}`)
  return { cached, truth }
}

const usage = (instances: Instance[]) => instances.reduce((sum, { repository: { usage } }) =>
  ({ queries: sum.queries + usage.queries, writes: sum.writes + usage.writes }), { queries: 0, writes: 0 })

const redis = () => ({ ...redisTarget(), commandTimeoutMs: 1000, connectTimeoutMs: 1000 })

// One shard (the App Engine sample's query) and several (a query per shard, merged): the same invariants.
for (const shards of [1, 3]) {
  const shardsNamed = shards === 1 ? '' : `${shards} shards: `

  t.test(`${shardsNamed}a burst of new visitors on two instances: one write and no read each, and the cached list ends equal to Firestore's`, async (t) => {
    const config = testConfig({ redis: redis(), visits: { ...testConfig().visits, shards } })
    const instances = await twoInstances(t, config)
    t.equal((await visit(instances[0].app, 'first')).headers['x-cache'], 'miss')
    const before = usage(instances)

    const responses = await Promise.all(Array.from({ length: 80 }, (_, i) => visit(instances[i % 2]!.app, `burst ${i}`)))
    t.same(new Set(responses.map((r) => r.statusCode)), new Set([200]))
    t.same(new Set(responses.map((r) => r.headers['x-cache'])), new Set(['update']), 'every visit stored and merged into the cached list')
    const after = usage(instances)
    t.same({ queries: after.queries - before.queries, writes: after.writes - before.writes }, { queries: 0, writes: 80 })

    const { cached, truth } = await listAndTruth(config, instances[0])
    t.equal(cached.length, 10)
    t.same(cached, truth, 'the cached list is Firestore\'s 10 latest: same ids, times and visitors, in the same order')
  })

  t.test(`${shardsNamed}the list expires under concurrent load on two instances: one rebuild (a query per shard) for both, nothing fails`, async (t) => {
    const config = testConfig({ redis: redis(), visits: { ...testConfig().visits, cacheTtlSeconds: 1, shards } })
    const instances = await twoInstances(t, config)
    await visit(instances[0].app, 'regular')
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const before = usage(instances)

    // Mostly the same visitor again (hits once rebuilt), some new ones, split over both instances.
    const responses = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      visit(instances[i % 2]!.app, i % 10 === 9 ? `newcomer ${i}` : 'regular')))
    t.same(new Set(responses.map((r) => r.statusCode)), new Set([200]), 'no request fails')
    const after = usage(instances)
    t.equal(after.queries - before.queries, shards, 'one rebuild across both instances for the expiry: a query per shard')
    t.equal(after.writes - before.writes, 11, 'the regular\'s visit after expiry and ten newcomers, each stored once')

    const { cached, truth } = await listAndTruth(config, instances[1])
    t.same(cached, truth, 'the rebuilt list, with everything merged while it was built, is Firestore\'s latest')
  })
}

t.test('two processes: a change on one is seen by the other within 50 ms', async (t) => {
  const env = {
    REDISHOST: redisTarget().host,
    REDISPORT: String(redisTarget().port),
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    GOOGLE_CLOUD_PROJECT: 'demo-visitme',
    VISITS_COLLECTION: uniqueName('visits'),
    CACHE_NAMESPACE: uniqueName('app'),
    RATE_LIMIT_WRITES: '0'
  }
  const servers = [await startServer(t, env), await startServer(t, env)]
  const get = async (server: { port: number }, userAgent: string) => {
    const response = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { 'user-agent': userAgent, accept: 'application/json' } })
    const body = await response.json() as { visits: Array<{ visitor: string }> }
    return { cache: response.headers.get('x-cache'), visitors: body.visits.map((v) => v.visitor) }
  }
  await get(servers[0]!, 'A')
  // Each process now holds the list in memory: A's refreshes cost no round trip.
  await waitFor('the second process to hold the list', async () => (await get(servers[1]!, 'A')).cache === 'hit')

  for (let round = 0; round < 5; round++) {
    const newcomer = `newcomer ${round}`
    const stored = await get(servers[0]!, newcomer)
    t.equal(stored.cache, 'update')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const seen = await get(servers[1]!, newcomer)
    t.equal(seen.cache, 'hit', `round ${round}: the other process already knows ${newcomer} is the newest`)
    t.equal(seen.visitors[0], `127.0.0.0: ${newcomer}`)
  }
  for (const server of servers) server.child.kill('SIGTERM')
  t.same(await Promise.all(servers.map(async (s) => await s.exited)), [0, 0])
})
