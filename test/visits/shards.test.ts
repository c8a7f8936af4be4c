import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { DatastoreVisitsRepository, VISIT_KIND } from '../../src/visits/datastore-repository.js'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { MemoryVisitsRepository } from '../../src/visits/memory-repository.js'
import { allShards, compareNames, SHARD_FIELD, shardOf } from '../../src/visits/shards.js'
import { visitId } from '../../src/visits/recent-visits.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { emulatorHost, testDatastore, testDatastoreConnection, testFirestore, uniqueName } from '../helpers/services.js'

const SHARDS = 4
const base = Date.parse('2026-11-21T12:00:00.000Z')

/**
 * Visits whose timestamps collide (six values for all of them), with ids of every kind the order
 * must handle: the service's (hex digests), letters of both cases and lengths, non-ASCII, decimal
 * digits (a numeric key in Datastore mode, a plain name in Firestore).
 */
function collidingVisits (): Array<{ id: string, visitor: string, timestamp: Date }> {
  const ids = [
    ...Array.from({ length: 60 }, (_, i) => visitId(`visitor ${i}`, undefined)),
    'a', 'ab', 'B', 'Z', 'z', 'é', '\uFFFD', '😀', '_', 'A-1', '7', '10', '123', '99'
  ]
  return ids.map((id, i) => ({ id, visitor: `v ${id}`, timestamp: new Date(base + (i * 5 % 6)) }))
}

t.test('shardOf: the same shard for an id every time, every shard used, within range', async (t) => {
  const ids = Array.from({ length: 2000 }, (_, i) => visitId(`visitor ${i}`, undefined))
  const counts = allShards(20).map((shard) => ids.filter((id) => shardOf(id, 20) === shard).length)
  t.ok(counts.every((n) => n > 2000 / 20 / 2 && n < 2000 / 20 * 2), `each of 20 shards holds about 100 of 2000 visits (${counts.join(' ')})`)
  t.equal(shardOf(ids[0]!, 20), shardOf(ids[0]!, 20))
  t.ok(ids.every((id) => shardOf(id, 1) === 0), 'one shard: always 0')
})

t.test('compareNames: numeric ids first by value, then names by their UTF-8 bytes', async (t) => {
  t.ok(compareNames('__id9__', '__id10__') < 0, 'numeric ids by value, not as text')
  t.ok(compareNames('__id99__', 'a') < 0, 'numeric before any name')
  t.ok(compareNames('B', 'a') < 0 && compareNames('a', 'ab') < 0)
  t.ok(compareNames('\uFFFD', '😀') < 0, 'a character past U+FFFF after U+FFFD, as its UTF-8 bytes sort (not its UTF-16 units)')
  t.equal(compareNames('x', 'x'), 0)
})

t.test('Firestore emulator: the merged rebuild answers what one query over every visit answers', async (t) => {
  const db = await testFirestore(t)
  const collection = uniqueName('visits')
  const sharded = new FirestoreVisitsRepository(db, { collection, timeoutMs: 30_000, shards: SHARDS })
  const visits = collidingVisits()
  await Promise.all(visits.map(async ({ id, ...visit }) => await sharded.add(id, visit)))

  const docs = (await db.collection(collection).get()).docs
  t.ok(docs.every((doc) => doc.get(SHARD_FIELD) === shardOf(doc.id, SHARDS)), 'each document carries the shard of its id')
  t.equal(new Set(docs.map((doc) => doc.get(SHARD_FIELD))).size, SHARDS, 'every shard holds visits')

  // Firestore's own order of the whole collection: the truth (the emulator needs no index for it).
  const truth = (await db.collection(collection).orderBy('timestamp', 'desc').get()).docs.map((doc) => doc.id)
  t.equal(truth.length, visits.length)
  for (const limit of [1, 10, 37, 100]) {
    t.same((await sharded.latest(limit)).map((v) => v.id), truth.slice(0, limit), `latest(${limit}) of ${SHARDS} shards`)
  }
  const before = { ...sharded.usage }
  await sharded.latest(10)
  t.equal(sharded.usage.queries - before.queries, SHARDS, 'one query per shard')

  const unsharded = new FirestoreVisitsRepository(db, { collection, timeoutMs: 30_000 })
  t.same((await unsharded.latest(10)).map((v) => v.id), truth.slice(0, 10), 'one shard reads the same collection with the one query of old')
})

t.test('Datastore-mode emulator: the merged rebuild answers what one query over every visit answers, numeric keys included', async (t) => {
  const client = await testDatastore(t)
  const sharded = new DatastoreVisitsRepository(client, { timeoutMs: 30_000, shards: SHARDS })
  const visits = collidingVisits()
  await Promise.all(visits.map(async ({ id, ...visit }) => await sharded.add(id, visit)))

  const [entities] = await client.runQuery(client.createQuery(VISIT_KIND))
  t.ok(entities.some((e) => e[client.KEY].id !== undefined) && entities.some((e) => e[client.KEY].name !== undefined), 'numeric keys and names both stored')
  const [all] = await client.runQuery(client.createQuery(VISIT_KIND).order('timestamp', { descending: true }).order('__key__', { descending: true }))
  const truth = all.map((e) => String(e[client.KEY].name ?? e[client.KEY].id))
  t.equal(truth.length, visits.length)
  for (const limit of [1, 10, 37, 100]) {
    t.same((await sharded.latest(limit)).map((v) => v.id), truth.slice(0, limit), `latest(${limit}) of ${SHARDS} shards`)
  }
})

t.test('memory: the merge over shards answers as one shard does', async (t) => {
  const sharded = new MemoryVisitsRepository({ shards: SHARDS })
  const single = new MemoryVisitsRepository()
  for (const { id, ...visit } of collidingVisits()) {
    await sharded.add(id, visit)
    await single.add(id, visit)
  }
  for (const limit of [1, 10, 37, 100]) {
    t.same(await sharded.latest(limit), await single.latest(limit), `latest(${limit})`)
  }
})

t.test('the app takes its shard count from its configuration: a visit it stores carries its shard', async (t) => {
  const config = testConfig({ firestore: { databaseId: '(default)', emulatorHost: emulatorHost(), timeoutMs: 30_000 }, visits: { ...testConfig().visits, shards: SHARDS } })
  const app = await buildTestApp(t, config)
  const answer = await app.inject({ url: '/', headers: { 'user-agent': 'sharded visitor', accept: 'application/json' } })
  t.equal(answer.statusCode, 200)
  const db = await testFirestore(t)
  const docs = (await db.collection(config.visits.collection).get()).docs
  t.equal(docs.length, 1)
  t.equal(docs[0]!.get(SHARD_FIELD), shardOf(docs[0]!.id, SHARDS))
})

// The built command, as `npm run migrate:shards` runs it (npm test builds before the tests).
const shardsCli = fileURLToPath(new URL('../../dist/migrate/shards-cli.js', import.meta.url))

async function migrateShards (env: Record<string, string>, args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [shardsCli, ...args], {
      env: { PATH: process.env.PATH ?? '', METADATA_SERVER_DETECTION: 'none', ...env }, timeout: 60_000
    }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }))
  })
}

t.test('from one shard to four on Firestore: visits stored at one shard are missed until npm run migrate:shards places the newest', async (t) => {
  const db = await testFirestore(t)
  const collection = uniqueName('visits')
  const old = new FirestoreVisitsRepository(db, { collection, timeoutMs: 30_000 })
  const visits = collidingVisits()
  for (const { id, ...visit } of visits.slice(0, 30)) await old.add(id, visit)
  const sharded = new FirestoreVisitsRepository(db, { collection, timeoutMs: 30_000, shards: SHARDS })
  for (const { id, ...visit } of visits.slice(30)) await sharded.add(id, visit)
  const truth = async () => (await db.collection(collection).orderBy('timestamp', 'desc').limit(10).get()).docs.map((doc) => doc.id)
  t.notSame((await sharded.latest(10)).map((v) => v.id), await truth(), 'before: the visits without a shard are not read')

  const env = { FIRESTORE_EMULATOR_HOST: emulatorHost(), VISITS_COLLECTION: collection, VISITS_SHARDS: String(SHARDS) }
  const run = await migrateShards(env, ['--latest', '10'])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /the 10 newest visits, read at 1 shard\(s\), now carry their shard of 4/)
  t.same((await sharded.latest(10)).map((v) => v.id), await truth(), 'after: the merged rebuild is the 10 newest again')
  t.equal((await migrateShards(env, ['--from', '4'])).code, 2, 'a move to the count already set is refused')
  t.equal((await migrateShards({ ...env, VISITS_SHARDS: '0' }, [])).code, 2, 'a bad VISITS_SHARDS is refused')
})

t.test('from one shard to four in Datastore mode: placeInShards keeps the entity and gives it its shard', async (t) => {
  const connection = testDatastoreConnection()
  const client = await testDatastore(t, connection)
  const old = new DatastoreVisitsRepository(client, { timeoutMs: 30_000 })
  const visits = collidingVisits()
  for (const { id, ...visit } of visits) await old.add(id, visit)
  const sharded = new DatastoreVisitsRepository(client, { timeoutMs: 30_000, shards: SHARDS })
  t.same(await sharded.latest(10), [], 'before: no visit has a shard')

  const env = { VISITS_STORE: 'datastore', DATASTORE_EMULATOR_HOST: connection.emulatorHost, DATASTORE_NAMESPACE: connection.namespace, VISITS_SHARDS: String(SHARDS) }
  const run = await migrateShards(env, ['--latest', '20'])
  t.equal(run.code, 0, run.stderr)
  t.same(await sharded.latest(20), await old.latest(20), 'after: the merged rebuild is the 20 newest, as one query over all answers')
  const [entities] = await client.runQuery(client.createQuery(VISIT_KIND).filter(new (await import('@google-cloud/datastore')).PropertyFilter(SHARD_FIELD, '=', 0)))
  t.ok(entities.every((e) => Object.keys(e).sort().join() === 'shard,timestamp,visitor'), 'the model\'s two properties and the shard')
})
