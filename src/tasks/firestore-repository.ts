import type { Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from '../plugins/bounded-calls.js'
import { dateField, FirestoreCollection, textField } from '../plugins/firestore-collection.js'
import type { FirestoreOps } from '../plugins/firestore-ops.js'
import type { Task, TasksRepository } from './repository.js'

/** Where the Firestore backend keeps the tasks. */
export const TASKS_COLLECTION = 'tasks'

export class FirestoreTasksRepository extends FirestoreCollection implements TasksRepository {
  constructor (db: Firestore | FirestoreOps, { collection = TASKS_COLLECTION, calls }: { collection?: string, calls: BoundedCalls }) {
    super(db, collection, calls)
  }

  async all (): Promise<Task[]> {
    const docs = await this.calls.run('read the tasks', undefined,
      async () => await this.ops.query({ collection: this.collection, orderBy: { field: 'createdAt', direction: 'asc' }, limit: 1000 }))
    return docs.map((doc) => ({ id: doc.id, name: textField(doc, 'name'), createdAt: dateField(doc, 'createdAt') }))
  }

  async add (name: string): Promise<Task> {
    const createdAt = new Date()
    const id = await this.calls.run('store a task', undefined, async () => await this.ops.add(this.collection, { name, createdAt }))
    return { id, name, createdAt }
  }

  async delete (id: string): Promise<boolean> {
    const path = `${this.collection}/${id}`
    return await this.calls.run('delete a task', undefined, async () => {
      const existed = (await this.ops.get(path)) !== undefined
      await this.ops.delete(path)
      return existed
    })
  }
}
