import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { withLists } from '@visitme/memcache'
import { DatastoreVisitsRepository } from '../../src/visits/datastore-repository.js'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { MemoryVisitsRepository } from '../../src/visits/memory-repository.js'
import { buildTestApp } from '../helpers/app.js'
import { redisReady, testDatastore, testFirestore, testRedis } from '../helpers/services.js'
import { CountingRepository } from './counting-repository.js'
import type { Config } from '../../src/config.js'
import { recentVisitsStoreKey } from '../../src/visits/cache-keys.js'
import { visitsContract } from './visits-contract.js'

/** Where the store keeps the visits list (see docs/cache.md, "In Redis"). */
const listStoreKey = (config: Config) => recentVisitsStoreKey(config.cacheNamespace, config.visits.collection)

/** The list's time to live as the store keeps it (the list expires by its own clock, not the key's TTL). */
const listTtlMs = async (app: FastifyInstance, config: Config) => (await withLists(app.cache.store).listGet(listStoreKey(config)))?.ttlMs ?? -2

visitsContract(t, 'embedded (memory cache, memory repository)', async (t, config) => {
  const repository = new CountingRepository(new MemoryVisitsRepository())
  const app = await buildTestApp(t, config, { repository })
  return {
    app,
    repository,
    cachedListTtlMs: async () => await listTtlMs(app, config)
  }
})

// Several shards: the page's behaviour is the same; the sharded repositories answer with their merge.
visitsContract(t, 'embedded, 3 shards', async (t, config) => {
  const repository = new CountingRepository(new MemoryVisitsRepository({ shards: 3 }))
  const app = await buildTestApp(t, config, { repository })
  return { app, repository, cachedListTtlMs: async () => await listTtlMs(app, config) }
})

t.test('real services', async (t) => {
  const redis = await redisReady(testRedis(t))
  const db = await testFirestore(t)
  visitsContract(t, 'Redis and the Firestore emulator', async (t, config) => {
    const repository = new CountingRepository(new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 5000 }))
    const key = listStoreKey(config)
    t.teardown(async () => { await redis.del(key) })
    const app = await buildTestApp(t, config, { redis, repository })
    return { app, repository, cachedListTtlMs: async () => await listTtlMs(app, config) }
  })
  visitsContract(t, 'Redis and the Firestore emulator, 3 shards', async (t, config) => {
    const repository = new CountingRepository(new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 5000, shards: 3 }))
    const key = listStoreKey(config)
    t.teardown(async () => { await redis.del(key) })
    const app = await buildTestApp(t, config, { redis, repository })
    return { app, repository, cachedListTtlMs: async () => await listTtlMs(app, config) }
  })
  visitsContract(t, 'Redis and the Datastore-mode emulator, 3 shards', async (t, config) => {
    const repository = new CountingRepository(new DatastoreVisitsRepository(await testDatastore(t), { timeoutMs: 5000, shards: 3 }))
    const key = listStoreKey(config)
    t.teardown(async () => { await redis.del(key) })
    const app = await buildTestApp(t, config, { redis, repository })
    return { app, repository, cachedListTtlMs: async () => await listTtlMs(app, config) }
  })
  visitsContract(t, 'Redis and the Datastore-mode emulator', async (t, config) => {
    const repository = new CountingRepository(new DatastoreVisitsRepository(await testDatastore(t), { timeoutMs: 5000 }))
    const key = listStoreKey(config)
    t.teardown(async () => { await redis.del(key) })
    const app = await buildTestApp(t, config, { redis, repository })
    return { app, repository, cachedListTtlMs: async () => await listTtlMs(app, config) }
  })
})
