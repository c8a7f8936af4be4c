import { randomUUID } from 'node:crypto'
import type { Task, TasksRepository } from './repository.js'

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
