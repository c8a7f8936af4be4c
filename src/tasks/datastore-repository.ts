import { randomUUID } from 'node:crypto'
import type { Datastore, Entity } from '@google-cloud/datastore'
import type { BoundedCalls } from '../plugins/bounded-calls.js'
import { Status } from '../plugins/database.js'
import { bounded, idOf, keyPart } from '../plugins/datastore.js'
import type { Task, TasksRepository } from './repository.js'

/** The kind of the task list's `Task` model. */
export const TASK_KIND = 'Task'

/** The list's bound, as in the Firestore repository. */
const MAX_TASKS = 1000

/**
 * Tasks as kind `Task` with its `name`. `createdAt` is ours (the old model has none, and
 * ignores it): the list is oldest first, with the tasks that lack it (the old app's) first,
 * in key order.
 */
export class DatastoreTasksRepository implements TasksRepository {
  readonly #client: Datastore
  readonly #calls: BoundedCalls

  constructor (client: Datastore, { calls }: { calls: BoundedCalls }) {
    this.#client = client
    this.#calls = calls
  }

  async all (): Promise<Task[]> {
    // Not ordered by createdAt in the query: Datastore would leave out every task without it.
    const query = this.#client.createQuery(TASK_KIND).limit(MAX_TASKS)
    const [entities] = await this.#calls.run('read the tasks', undefined, async (ms) => await this.#client.runQuery(query, bounded(ms)))
    const tasks = entities.map((entity: Entity) => ({
      id: idOf(entity[this.#client.KEY]),
      name: String(entity.name ?? ''),
      createdAt: entity.createdAt instanceof Date ? entity.createdAt : new Date(0)
    }))
    // Stable: equal times keep the query's key order.
    return tasks.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
  }

  async add (name: string): Promise<Task> {
    const task = { id: randomUUID(), name, createdAt: new Date() }
    // Named before the first attempt: a commit the client retries after a lost answer finds its own entity, not a copy.
    const key = this.#client.key([TASK_KIND, task.id])
    await this.#calls.run('store a task', undefined, async () => {
      try {
        await this.#client.insert({ key, data: { name, createdAt: task.createdAt } })
      } catch (err) {
        if ((err as { code?: unknown }).code !== Status.ALREADY_EXISTS) throw err
      }
    })
    return task
  }

  async delete (id: string): Promise<boolean> {
    const key = this.#client.key([TASK_KIND, keyPart(this.#client, id)])
    return await this.#calls.run('delete a task', undefined, async (ms) => {
      const [existing] = await this.#client.get(key, bounded(ms)) as [Entity | undefined]
      await this.#client.delete(key, bounded(ms).gaxOptions)
      return existing !== undefined
    })
  }
}
