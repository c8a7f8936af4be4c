import t from 'tap'
import { DatastoreGreetingsRepository } from '../../src/guestbook/datastore-repository.js'
import { FirestoreGreetingsRepository } from '../../src/guestbook/firestore-repository.js'
import { MemoryGreetingsRepository } from '../../src/guestbook/memory-repository.js'
import { BoundedCalls } from '../../src/plugins/bounded-calls.js'
import { testDatastore, testFirestore, testFirestoreThread, uniqueName } from '../helpers/services.js'
import { greetingsContract } from './repository-contract.js'

const calls = () => new BoundedCalls({ timeoutMs: 5000 })

greetingsContract(t, 'memory', async () => new MemoryGreetingsRepository())
greetingsContract(t, 'datastore mode (emulator)', async (t) => new DatastoreGreetingsRepository(await testDatastore(t), { calls: calls() }))

t.test('firestore', async (t) => {
  const db = await testFirestore(t)
  greetingsContract(t, 'firestore (emulator)', async () => new FirestoreGreetingsRepository(db, { collection: uniqueName('guestbooks'), calls: calls() }))
  const thread = testFirestoreThread(t)
  greetingsContract(t, 'firestore (emulator, client in a worker thread)', async () => new FirestoreGreetingsRepository(thread, { collection: uniqueName('guestbooks'), calls: calls() }))
})
