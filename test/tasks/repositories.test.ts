import t from 'tap'
import { BoundedCalls } from '../../src/plugins/bounded-calls.js'
import { DatastoreTasksRepository } from '../../src/tasks/datastore-repository.js'
import { FirestoreTasksRepository } from '../../src/tasks/firestore-repository.js'
import { MemoryTasksRepository } from '../../src/tasks/memory-repository.js'
import { testDatastore, testFirestore, testFirestoreThread, uniqueName } from '../helpers/services.js'
import { tasksContract } from './repository-contract.js'

const calls = () => new BoundedCalls({ timeoutMs: 5000 })

tasksContract(t, 'memory', async () => new MemoryTasksRepository())
tasksContract(t, 'datastore mode (emulator)', async (t) => new DatastoreTasksRepository(await testDatastore(t), { calls: calls() }))

t.test('firestore', async (t) => {
  const db = await testFirestore(t)
  tasksContract(t, 'firestore (emulator)', async () => new FirestoreTasksRepository(db, { collection: uniqueName('tasks'), calls: calls() }))
  const thread = testFirestoreThread(t)
  tasksContract(t, 'firestore (emulator, client in a worker thread)', async () => new FirestoreTasksRepository(thread, { collection: uniqueName('tasks'), calls: calls() }))
})
