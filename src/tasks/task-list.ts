import type { Cache, RouteCache } from '@visitme/memcache'
import { Retry } from '../lib/retry.js'
import { TASKS_PAGE, taskRowKey } from './cache-keys.js'
import type { Task, TasksRepository } from './repository.js'

/**
 * The Flask task list: the query memoized, each row a cached fragment, the whole view
 * cached for GETs; every change invalidates all three, for every instance sharing Redis.
 */
export class TaskList {
  readonly #tasks: TasksRepository
  readonly #fragments: Cache
  readonly #all: () => Promise<Task[]>
  readonly #invalidation: Retry

  constructor ({ tasks, cache, routeCache, fragments }: {
    tasks: TasksRepository
    /** The task list's own namespace, for the memoized query. */
    cache: Cache
    routeCache: RouteCache
    /** Where each task's rendered row is kept. */
    fragments: Cache
  }) {
    this.#tasks = tasks
    this.#fragments = fragments
    const all = cache.memoize(async function allTasks () { return await tasks.all() }, { ttl: 300 })
    this.#all = all
    // The query first, then the views: a view computed after the tag changes can only use the fresh query.
    // Whatever the cache could not take is retried until it can, and before this instance serves a view.
    this.#invalidation = new Retry(async () => await cache.deleteMemoized(all) && await routeCache.invalidateTags(TASKS_PAGE))
  }

  async all (): Promise<Task[]> {
    return await this.#all()
  }

  /** Whether a change is not yet invalidated everywhere: no view may be served before it is. */
  get stale (): boolean {
    return this.#invalidation.pending
  }

  async invalidate (): Promise<void> {
    await this.#invalidation.run()
  }

  async add (name: string): Promise<void> {
    await this.#tasks.add(name)
    await this.invalidate()
  }

  /** False when there was no such task. */
  async delete (id: string): Promise<boolean> {
    if (!(await this.#tasks.delete(id))) return false
    await this.#fragments.delete(taskRowKey(id))
    await this.invalidate()
    return true
  }

  close (): void {
    this.#invalidation.stop()
  }
}
