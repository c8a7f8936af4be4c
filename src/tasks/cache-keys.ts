/** The task list's cache namespace (its memoized query), under the app's. */
export const tasksNamespace = (cacheNamespace: string): string => `${cacheNamespace}/tasks`

/** The route cache's key and tag of the task list page. */
export const TASKS_PAGE = 'tasks'

/** A task's rendered row, in the view's fragments. */
export const taskRowKey = (id: string): string => `task:${id}`
