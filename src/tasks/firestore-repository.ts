import type { Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from '../plugins/bounded-calls.js'
import { dateField, FirestoreCollection, textField } from '../plugins/firestore-collection.js'
import type { Task, TasksRepository } from './repository.js'

/** Where the Firestore backend keeps the tasks. */
export const TASKS_COLLECTION = 'tasks'

export class FirestoreTasksRepository extends FirestoreCollection implements TasksRepository {
  constructor (db: Firestore, { collection = TASKS_COLLECTION, calls }: { collection?: string, calls: BoundedCalls }) {
    super(db, collection, calls)
  }

  async all (): Promise<Task[]> {
    const snapshot = await this.calls.run('read the tasks', undefined, () => this.collection.orderBy('createdAt').limit(1000).get())
    return snapshot.docs.map((doc) => ({ id: doc.id, name: textField(doc, 'name'), createdAt: dateField(doc, 'createdAt') }))
  }

  async add (name: string): Promise<Task> {
    const createdAt = new Date()
    const ref = await this.calls.run('store a task', undefined, () => this.collection.add({ name, createdAt }))
    return { id: ref.id, name, createdAt }
  }

  async delete (id: string): Promise<boolean> {
    const document = this.collection.doc(id)
    return await this.calls.run('delete a task', undefined, async () => {
      const existed = (await document.get()).exists
      await document.delete()
      return existed
    })
  }
}
