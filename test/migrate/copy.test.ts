import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Test } from 'tap'
import type { Datastore } from '@google-cloud/datastore'
import type { Firestore } from '@google-cloud/firestore'
import { FirestoreGreetingsRepository } from '../../src/guestbook/firestore-repository.js'
import { BoundedCalls } from '../../src/plugins/bounded-calls.js'
import { Checkpoint } from '../../src/migrate/checkpoint.js'
import { copyToFirestore, type Collections, type CopyOptions } from '../../src/migrate/copy.js'
import { FirestoreTasksRepository } from '../../src/tasks/firestore-repository.js'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { SHARD_FIELD, shardOf } from '../../src/visits/shards.js'
import { freePort } from '../helpers/ports.js'
import { datastoreEmulatorHost, emulatorHost, testDatastore, testDatastoreConnection, testFirestore, uniqueName } from '../helpers/services.js'

const base = Date.parse('2024-03-01T10:00:00.000Z')

/** An App Engine app's data, as NDB wrote it: 25 visits, 7 greetings in two books, 5 tasks, and a task Firestore cannot name. */
async function seed (client: Datastore): Promise<void> {
  const entities = []
  for (let i = 1; i <= 25; i++) {
    entities.push({ key: client.key(['Visit', client.int(String(5_000_000_000_000_000 + i))]), data: { visitor: `visitor ${i}`, timestamp: new Date(base + i * 1000) } })
  }
  for (let i = 1; i <= 7; i++) {
    const book = i <= 5 ? 'default_guestbook' : 'family & friends'
    entities.push({ key: client.key(['Guestbook', book, 'Greeting', client.int(String(6_000_000 + i))]), data: { author: i % 2 === 0 ? null : `author ${i}`, content: `greeting ${i}`, date: new Date(base + i * 1000) } })
  }
  for (let i = 1; i <= 5; i++) entities.push({ key: client.key(['Task', client.int(String(7_000_000 + i))]), data: { name: `task ${i}` } })
  entities.push({ key: client.key(['Task', 'a/b']), data: { name: 'a key name with a slash' } })
  await client.save(entities)
}

const collectionsFor = (): Collections => ({ visits: uniqueName('visits'), guestbooks: uniqueName('guestbooks'), tasks: uniqueName('tasks') })

async function documents (db: Firestore, collections: Collections): Promise<{ visits: number, greetings: number, tasks: number }> {
  const count = async (query: FirebaseFirestore.Query) => (await query.count().get()).data().count
  let greetings = 0
  // The books' documents exist only as parents of their greetings: listed, not queried.
  for (const book of await db.collection(collections.guestbooks).listDocuments()) greetings += await count(book.collection('greetings'))
  return { visits: await count(db.collection(collections.visits)), greetings, tasks: await count(db.collection(collections.tasks)) }
}

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'visitme-migrate-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

t.test('the copy: interrupted, resumed, rerun, never a duplicate nor an overwrite; the service reads what it wrote', async (t) => {
  const source = await testDatastore(t)
  await seed(source)
  const db = await testFirestore(t)
  const collections = collectionsFor()
  const file = join(await tempDir(t), 'checkpoint.json')
  const run = async (options: Partial<CopyOptions> = {}) => await copyToFirestore({
    source, target: db, collections, pageSize: 10, checkpoint: await Checkpoint.open(file, 'the test copy'), ...options
  })

  // Interrupted once the first page of visits is written and checkpointed.
  const controller = new AbortController()
  const first = await run({ signal: controller.signal, onProgress: (kind, counts) => { if (kind === 'Visit' && counts.read === 10) controller.abort() } })
  t.equal(first.interrupted, true)
  t.same(first.kinds, { Visit: { read: 10, written: 10, skipped: 0, failed: 0 } })
  t.same(await documents(db, collections), { visits: 10, greetings: 0, tasks: 0 })
  t.ok(JSON.parse(await readFile(file, 'utf8')).kinds.Visit.cursor, 'the cursor after the first page is saved')

  const problems: string[] = []
  const second = await run({ onProblem: (problem) => problems.push(problem) })
  t.equal(second.interrupted, false)
  t.same(second.kinds, {
    Visit: { read: 15, written: 15, skipped: 0, failed: 0 },
    Greeting: { read: 7, written: 7, skipped: 0, failed: 0 },
    Task: { read: 6, written: 5, skipped: 0, failed: 1 }
  }, 'went on from the checkpoint: nothing read twice')
  t.match(problems, [/Task\/a\/b: its key name is not a valid Firestore document id/])
  t.same(await documents(db, collections), { visits: 25, greetings: 7, tasks: 5 })

  // The service's Firestore repositories see the data as the Datastore backend showed it.
  const visits = await new FirestoreVisitsRepository(db, { collection: collections.visits, timeoutMs: 5000 }).latest(3)
  t.same(visits, [25, 24, 23].map((i) => ({ id: String(5_000_000_000_000_000 + i), visitor: `visitor ${i}`, timestamp: new Date(base + i * 1000) })),
    'numeric ids kept as their decimal strings, past 2^53')
  const calls = new BoundedCalls({ timeoutMs: 5000 })
  const greetings = new FirestoreGreetingsRepository(db, { collection: collections.guestbooks, calls })
  t.same(await greetings.latest('default_guestbook', 2), [{ author: 'author 5', content: 'greeting 5', date: new Date(base + 5000) }, { content: 'greeting 4', date: new Date(base + 4000) }])
  t.same((await greetings.latest('family & friends', 10)).map((g) => g.content), ['greeting 7', 'greeting 6'])
  t.same((await new FirestoreTasksRepository(db, { collection: collections.tasks, calls }).all()).map((task) => [task.id, task.name]),
    [1, 2, 3, 4, 5].map((i) => [String(7_000_000 + i), `task ${i}`]))

  const third = await run()
  t.same(third.kinds, { Visit: { read: 0, written: 0, skipped: 0, failed: 0 }, Greeting: { read: 0, written: 0, skipped: 0, failed: 0 }, Task: { read: 0, written: 0, skipped: 0, failed: 0 } },
    'a finished copy reads nothing again')

  // From the beginning again (the checkpoint lost), after the service changed a document: nothing is overwritten.
  await db.collection(collections.visits).doc(String(5_000_000_000_000_001)).update({ visitor: 'changed since' })
  await rm(file)
  const again = await run()
  t.same(again.kinds, {
    Visit: { read: 25, written: 0, skipped: 25, failed: 0 },
    Greeting: { read: 7, written: 0, skipped: 7, failed: 0 },
    Task: { read: 6, written: 0, skipped: 5, failed: 1 }
  })
  t.equal((await db.collection(collections.visits).doc(String(5_000_000_000_000_001)).get()).get('visitor'), 'changed since')
  t.same(await documents(db, collections), { visits: 25, greetings: 7, tasks: 5 })
})

t.test('a dry run reads everything, tells what it would write, and writes nothing', async (t) => {
  const source = await testDatastore(t)
  await seed(source)
  const db = await testFirestore(t)
  const collections = collectionsFor()
  await db.collection(collections.tasks).doc(String(7_000_001)).create({ name: 'there already', createdAt: new Date() })
  const result = await copyToFirestore({ source, target: db, collections, dryRun: true, pageSize: 10, checkpoint: Checkpoint.fresh('dry run') })
  t.same(result.kinds, {
    Visit: { read: 25, written: 25, skipped: 0, failed: 0 },
    Greeting: { read: 7, written: 7, skipped: 0, failed: 0 },
    Task: { read: 6, written: 4, skipped: 1, failed: 1 }
  })
  t.same(await documents(db, collections), { visits: 0, greetings: 0, tasks: 1 })
})

const cli = fileURLToPath(new URL('../../src/migrate/cli.ts', import.meta.url))

async function migrate (env: Record<string, string>, args: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', import.meta.resolve('tsx'), cli, ...args], {
      cwd, env: { PATH: process.env.PATH ?? '', METADATA_SERVER_DETECTION: 'none', ...env }, timeout: 60_000
    }, (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }))
  })
}

t.test('npm run migrate: between the two emulators, from the service\'s variables, with a summary; run twice, copies once', async (t) => {
  const connection = testDatastoreConnection()
  await seed(await testDatastore(t, connection))
  const cwd = await tempDir(t)
  const env = {
    DATASTORE_EMULATOR_HOST: connection.emulatorHost,
    DATASTORE_NAMESPACE: connection.namespace,
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    VISITS_COLLECTION: uniqueName('visits')
  }
  const first = await migrate(env, ['--kinds', 'Visit', '--page-size', '7'], cwd)
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /Copying Visit from the Datastore-mode emulator at .+, namespace ns-/)
  t.match(first.stdout, /^Visit +25 +25 +0 +0$/m)
  t.match(first.stderr, /Visit +\[#{30}\] +25\/25/, 'the progress bar ends full')
  const again = await migrate(env, ['--kinds', 'Visit', '--restart'], cwd)
  t.equal(again.code, 0, again.stderr)
  t.match(again.stdout, /^total +25 +0 +25 +0$/m, 'everything skipped: already there')
  const db = await testFirestore(t)
  t.equal((await db.collection(env.VISITS_COLLECTION).count().get()).data().count, 25)
})

t.test('npm run migrate with VISITS_SHARDS: each copied visit carries its shard, and the sharded list reads the copy', async (t) => {
  const connection = testDatastoreConnection()
  await seed(await testDatastore(t, connection))
  const env = {
    DATASTORE_EMULATOR_HOST: connection.emulatorHost,
    DATASTORE_NAMESPACE: connection.namespace,
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    VISITS_COLLECTION: uniqueName('visits'),
    VISITS_SHARDS: '4'
  }
  const run = await migrate(env, ['--kinds', 'Visit'], await tempDir(t))
  t.equal(run.code, 0, run.stderr)
  const db = await testFirestore(t)
  const docs = (await db.collection(env.VISITS_COLLECTION).get()).docs
  t.equal(docs.length, 25)
  t.same(docs.filter((doc) => doc.get(SHARD_FIELD) !== shardOf(doc.id, 4)).map((doc) => doc.id), [], 'every visit in the shard of its id')
  const sharded = new FirestoreVisitsRepository(db, { collection: env.VISITS_COLLECTION, timeoutMs: 30_000, shards: 4 })
  const single = new FirestoreVisitsRepository(db, { collection: env.VISITS_COLLECTION, timeoutMs: 30_000 })
  t.same(await sharded.latest(10), await single.latest(10))
})

t.test('npm run migrate: Ctrl-C stops after the page in progress, and the same command goes on from there', async (t) => {
  const connection = testDatastoreConnection()
  await seed(await testDatastore(t, connection))
  const cwd = await tempDir(t)
  const env = {
    PATH: process.env.PATH ?? '',
    METADATA_SERVER_DETECTION: 'none',
    DATASTORE_EMULATOR_HOST: connection.emulatorHost,
    DATASTORE_NAMESPACE: connection.namespace,
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    VISITS_COLLECTION: uniqueName('visits')
  }
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), cli, '--kinds', 'Visit', '--page-size', '1'], { cwd, env })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
    // The first page written: interrupt, as a user would.
    if (/Visit .*\] +1\/25/.test(stderr) && !child.killed) child.kill('SIGINT')
  })
  const [code] = await once(child, 'exit') as [number]
  t.equal(code, 130, stderr)
  t.match(stdout, /interrupted: run the same command again to go on from the checkpoint/)
  const copied = Number(/^Visit +\d+ +(\d+)/m.exec(stdout)?.[1])
  t.ok(copied >= 1 && copied < 25, `${copied} visits copied before the interruption`)
  const rest = await migrate(env, ['--kinds', 'Visit', '--page-size', '1'], cwd)
  t.equal(rest.code, 0, rest.stderr)
  t.match(rest.stdout, new RegExp(`^Visit +${25 - copied} +${25 - copied} +0 +0$`, 'm'), 'the rest, read and written once')
})

t.test('npm run migrate: a side that cannot be reached, or a bad variable, is named before anything is copied', async (t) => {
  const cwd = await tempDir(t)
  const unreachable = `127.0.0.1:${await freePort()}`
  const source = await migrate({ DATASTORE_EMULATOR_HOST: unreachable, FIRESTORE_EMULATOR_HOST: emulatorHost() }, [], cwd)
  t.equal(source.code, 2)
  t.match(source.stderr, `cannot use the source, the Datastore-mode emulator at ${unreachable}`)
  t.match(source.stderr, 'hint: nothing listens at')
  t.match(source.stderr, 'check DATASTORE_EMULATOR_HOST')
  const bad = await migrate({ DATASTORE_EMULATOR_HOST: 'emulator', FIRESTORE_EMULATOR_HOST: emulatorHost() }, [], cwd)
  t.equal(bad.code, 2)
  t.match(bad.stderr, /DATASTORE_EMULATOR_HOST="emulator" is invalid: must be host:port/)
  // The two emulators swapped: each side says which mode its variable needs.
  const swapped = await migrate({ DATASTORE_EMULATOR_HOST: emulatorHost(), FIRESTORE_EMULATOR_HOST: datastoreEmulatorHost() }, [], cwd)
  t.equal(swapped.code, 2)
  t.match(swapped.stderr, `hint: the emulator at ${emulatorHost()} runs in native mode: start it with --database-mode=datastore-mode`)
  // Named by another host name: one host:port for both is refused before either side is tried.
  const target = await migrate({ DATASTORE_EMULATOR_HOST: datastoreEmulatorHost(), FIRESTORE_EMULATOR_HOST: datastoreEmulatorHost().replace('127.0.0.1', 'localhost') }, [], cwd)
  t.equal(target.code, 2)
  t.match(target.stderr, 'FIRESTORE_EMULATOR_HOST needs one started without --database-mode=datastore-mode')
  const sameDatabase = await migrate({ GOOGLE_CLOUD_PROJECT: 'my-project' }, [], cwd)
  t.match(sameDatabase.stderr, /DATASTORE_DATABASE and FIRESTORE_DATABASE both name \(default\)/)
})
