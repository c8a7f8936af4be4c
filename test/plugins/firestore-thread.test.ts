import { createRequire } from 'node:module'
import Fastify from 'fastify'
import t from 'tap'
import firestorePlugin from '../../src/plugins/firestore.js'
import { Status } from '../../src/plugins/database.js'
import { threadOps } from '../../src/plugins/firestore-worker.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { emulatorHost, uniqueName } from '../helpers/services.js'

// Whether this thread has loaded the Firestore client's gRPC code (CommonJS: it is in require's cache).
const loadedHere = (): boolean => Object.keys(createRequire(import.meta.url).cache).some((file) => file.includes('@grpc/grpc-js'))

// First in this file: nothing here has loaded the client yet.
t.test('the server\'s client lives in its thread: visits stored and read, and no gRPC code on the thread that serves pages', async (t) => {
  t.notOk(loadedHere(), 'no gRPC code loaded before')
  const config = testConfig({ firestore: { databaseId: '(default)', emulatorHost: emulatorHost(), timeoutMs: 10_000 } })
  const app = await buildTestApp(t, config)
  for (const agent of ['thread visitor 1', 'thread visitor 2']) {
    t.equal((await app.inject({ url: '/', headers: { 'user-agent': agent, accept: 'application/json' } })).statusCode, 200, `${agent} stored`)
  }
  await app.database.warmUp
  t.same((await app.inject({ url: '/health' })).json(), { status: 'ok', redis: 'embedded', firestore: 'up' })
  const stored = await app.firestore.query({ collection: config.visits.collection, orderBy: { field: 'timestamp', direction: 'desc' }, limit: 2 })
  t.same(stored.map((doc) => doc.data.visitor), ['127.0.0.0: thread visitor 2', '127.0.0.0: thread visitor 1'], 'both visits, newest first')
  t.ok(stored.every((doc) => doc.data.timestamp instanceof Date), 'timestamps come back as Dates')
  t.notOk(loadedHere(), 'the client\'s gRPC code ran in the worker thread only')
})

t.test('an error crosses the thread with its gRPC code: a second create of one document is ALREADY_EXISTS', async (t) => {
  const thread = threadOps({ databaseId: '(default)', emulatorHost: emulatorHost() })
  t.teardown(async () => { await thread.close() })
  const path = `${uniqueName('thread')}/one`
  await thread.ops.create(path, { n: 1 })
  await t.rejects(thread.ops.create(path, { n: 2 }), { code: Status.ALREADY_EXISTS }, 'the code callers test')
  t.same((await thread.ops.get(path))?.data, { n: 1 }, 'the first stays')
  t.equal(await thread.ops.get(`${path}-missing`), undefined, 'a missing document reads as undefined')
})

t.test('the thread starts on the first call and ends on close; a call after close fails', async (t) => {
  const thread = threadOps({ databaseId: '(default)', emulatorHost: emulatorHost() })
  t.notOk(thread.started(), 'nothing started until a call')
  t.same(await thread.ops.query({ collection: uniqueName('empty'), limit: 1 }), [], 'a call starts it')
  t.ok(thread.started())
  await thread.close()
  t.notOk(thread.started(), 'ended')
  await t.rejects(thread.ops.query({ collection: uniqueName('empty'), limit: 1 }), /closed/, 'no new thread after close')
  t.notOk(thread.started())
})

t.test('an argument that cannot cross threads fails its call, and the next call is answered', async (t) => {
  const thread = threadOps({ databaseId: '(default)', emulatorHost: emulatorHost() })
  t.teardown(async () => { await thread.close() })
  await t.rejects(thread.ops.create(`${uniqueName('thread')}/x`, { f: () => 1 }), { name: 'DataCloneError' })
  t.same(await thread.ops.query({ collection: uniqueName('empty'), limit: 1 }), [])
})

// Last: it loads the client on this thread.
t.test('thread: false (telemetry on) keeps the client on this thread, where its spans join the request\'s trace', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(firestorePlugin, { databaseId: '(default)', emulatorHost: emulatorHost(), timeoutMs: 10_000, thread: false })
  await app.ready()
  t.same(await app.firestore.query({ collection: uniqueName('empty'), limit: 1 }), [])
  t.ok(loadedHere(), 'the client\'s gRPC code is loaded here')
})
