import t from 'tap'
import { FirestoreGreetingsRepository, MemoryGreetingsRepository } from '../../src/guestbook/greetings.js'
import { DatastoreGreetingsRepository } from '../../src/guestbook/datastore-repository.js'
import { BoundedCalls } from '../../src/lib/bounded-calls.js'
import { DatastoreTasksRepository } from '../../src/tasks/datastore-repository.js'
import { FirestoreTasksRepository, MemoryTasksRepository } from '../../src/tasks/tasks.js'
import { DatastoreVisitsRepository } from '../../src/visits/datastore-repository.js'
import { greetingsContract } from '../guestbook/repository-contract.js'
import { testFirestore, uniqueName } from '../helper.js'
import { testDatastore } from '../helpers/datastore.js'
import { tasksContract } from '../tasks/repository-contract.js'
import { repositoryContract } from '../visits/repository-contract.js'

const calls = () => new BoundedCalls({ timeoutMs: 5000 })

// Every backend passes the same suites: Datastore mode beside memory and Firestore.
repositoryContract(t, 'datastore mode (emulator)', async (t) => new DatastoreVisitsRepository(await testDatastore(t), { timeoutMs: 5000 }))

greetingsContract(t, 'memory', async () => new MemoryGreetingsRepository())
greetingsContract(t, 'datastore mode (emulator)', async (t) => new DatastoreGreetingsRepository(await testDatastore(t), { calls: calls() }))

tasksContract(t, 'memory', async () => new MemoryTasksRepository())
tasksContract(t, 'datastore mode (emulator)', async (t) => new DatastoreTasksRepository(await testDatastore(t), { calls: calls() }))

t.test('firestore', async (t) => {
  const db = await testFirestore(t)
  greetingsContract(t, 'firestore (emulator)', async () => new FirestoreGreetingsRepository(db, { collection: uniqueName('guestbooks'), calls: calls() }))
  tasksContract(t, 'firestore (emulator)', async () => new FirestoreTasksRepository(db, { collection: uniqueName('tasks'), calls: calls() }))
})
