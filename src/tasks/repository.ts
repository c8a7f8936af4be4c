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
