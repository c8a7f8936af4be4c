import { randomUUID } from 'node:crypto'
import type { CollectionReference, Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from '../lib/bounded-calls.js'

export interface Task {
  id: string
  name: string
  createdAt: Date
}

/** The task list of the Flask sample, oldest first. */
export interface TasksRepository {
  all (): Promise<Task[]>
  add (name: string): Promise<Task>
  /** False when there was no such task. */
  delete (id: string): Promise<boolean>
}

export class MemoryTasksRepository implements TasksRepository {
  readonly #tasks = new Map<string, Task>()

  async all (): Promise<Task[]> {
    return [...this.#tasks.values()].map((task) => ({ ...task }))
  }

  async add (name: string): Promise<Task> {
    // Bounded like the other embedded stores.
    if (this.#tasks.size >= 1000) this.#tasks.delete(this.#tasks.keys().next().value!)
    const task = { id: randomUUID(), name, createdAt: new Date() }
    this.#tasks.set(task.id, task)
    return { ...task }
  }

  async delete (id: string): Promise<boolean> {
    return this.#tasks.delete(id)
  }
}

/** Where the Firestore backend keeps the tasks. */
export const TASKS_COLLECTION = 'tasks'

export class FirestoreTasksRepository implements TasksRepository {
  readonly #tasks: CollectionReference
  readonly #calls: BoundedCalls

  constructor (db: Firestore, { collection = TASKS_COLLECTION, calls }: { collection?: string, calls: BoundedCalls }) {
    this.#tasks = db.collection(collection)
    this.#calls = calls
  }

  async all (): Promise<Task[]> {
    const snapshot = await this.#calls.run('read the tasks', undefined, () => this.#tasks.orderBy('createdAt').limit(1000).get())
    return snapshot.docs.map((doc) => ({
      id: doc.id,
      name: String(doc.get('name') ?? ''),
      createdAt: doc.get('createdAt')?.toDate?.() ?? new Date(0)
    }))
  }

  async add (name: string): Promise<Task> {
    const createdAt = new Date()
    const ref = await this.#calls.run('store a task', undefined, () => this.#tasks.add({ name, createdAt }))
    return { id: ref.id, name, createdAt }
  }

  async delete (id: string): Promise<boolean> {
    const document = this.#tasks.doc(id)
    return await this.#calls.run('delete a task', undefined, async () => {
      const existed = (await document.get()).exists
      await document.delete()
      return existed
    })
  }
}
