import t from 'tap'
import { DatastoreVisitsRepository } from '../../src/visits/datastore-repository.js'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { MemoryVisitsRepository } from '../../src/visits/memory-repository.js'
import { testDatastore, testFirestore, testFirestoreThread, uniqueName } from '../helpers/services.js'
import { repositoryContract } from './repository-contract.js'

repositoryContract(t, 'memory', async () => new MemoryVisitsRepository())
repositoryContract(t, 'memory', async () => new MemoryVisitsRepository({ shards: 3 }), { shards: 3 })

t.test('firestore', async (t) => {
  const db = await testFirestore(t)
  repositoryContract(t, 'firestore (emulator)', async () =>
    new FirestoreVisitsRepository(db, { collection: uniqueName('visits'), timeoutMs: 5000 }))
  repositoryContract(t, 'firestore (emulator)', async () =>
    new FirestoreVisitsRepository(db, { collection: uniqueName('visits'), timeoutMs: 5000, shards: 3 }), { shards: 3 })

  // The server's way: the client in a worker thread, the same repository on this one.
  const thread = testFirestoreThread(t)
  repositoryContract(t, 'firestore (emulator, client in a worker thread)', async () =>
    new FirestoreVisitsRepository(thread, { collection: uniqueName('visits'), timeoutMs: 5000 }))
  repositoryContract(t, 'firestore (emulator, client in a worker thread)', async () =>
    new FirestoreVisitsRepository(thread, { collection: uniqueName('visits'), timeoutMs: 5000, shards: 3 }), { shards: 3 })

  t.test('documents have the App Engine sample shape', async (t) => {
    const collection = uniqueName('visits')
    const repository = new FirestoreVisitsRepository(db, { collection, timeoutMs: 5000 })
    const timestamp = new Date('2026-11-21T12:00:00.000Z')
    await repository.add('doc-id', { visitor: '1.2.3.0: ua', timestamp })
    const docs = (await db.collection(collection).get()).docs
    t.equal(docs.length, 1)
    t.same(Object.keys(docs[0]!.data()).sort(), ['timestamp', 'visitor'])
    t.same(docs[0]!.get('timestamp').toDate(), timestamp, 'stored as a Firestore timestamp')
    t.equal(docs[0]!.id, 'doc-id', 'under the id it was given')
  })
})

// A namespace of its own per repository: Visit is a kind, not a collection to name.
repositoryContract(t, 'datastore mode (emulator)', async (t) => new DatastoreVisitsRepository(await testDatastore(t), { timeoutMs: 5000 }))
repositoryContract(t, 'datastore mode (emulator)', async (t) => new DatastoreVisitsRepository(await testDatastore(t), { timeoutMs: 5000, shards: 3 }), { shards: 3 })

t.test('the memory repository keeps a bounded number of visits', async (t) => {
  const repository = new MemoryVisitsRepository({ capacity: 3 })
  for (let i = 0; i < 5; i++) await repository.add(`id${i}`, { visitor: `v${i}`, timestamp: new Date(i * 1000) })
  t.same((await repository.latest(10)).map((v) => v.visitor), ['v4', 'v3', 'v2'])
})
