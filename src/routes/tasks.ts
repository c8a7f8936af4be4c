import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Cache, RouteCache } from '../cache/index.js'
import { Retry } from '../lib/retry.js'
import type { WriteLimit } from '../lib/write-limit.js'
import type { TasksRepository } from '../tasks/tasks.js'

declare module 'fastify' {
  interface Session {
    /** A message shown once, on the next page. */
    flash?: string
  }
}

export interface TasksRoutesOptions {
  tasks: TasksRepository
  /** The task list's own namespace, for the memoized query. */
  cache: Cache
  routeCache: RouteCache
  /** Where each task's rendered row is kept. */
  fragments: Cache
  /** Counts the changes a client makes. */
  limitWrites: WriteLimit
}

/**
 * Stands in for the CSRF token in cached pages and fragments: a user's token must never
 * be stored for others. A `<` can never come out of escaped user input, so no task name
 * can imitate it.
 */
const TOKEN_SLOT = '<csrf-token>'
const hasFlash = (request: FastifyRequest) => request.session.get('flash') !== undefined

/**
 * The Flask task list: the query memoized, each row a cached fragment, the whole view
 * cached for GETs; every change invalidates all three, for every instance sharing Redis.
 */
export default async function tasksRoutes (app: FastifyInstance, { tasks, cache, routeCache, fragments, limitWrites }: TasksRoutesOptions): Promise<void> {
  const allTasks = cache.memoize(async function allTasks () { return await tasks.all() }, { ttl: 300 })

  // The query first, then the views: a view computed after the tag changes can only use the fresh query.
  // Whatever the cache could not take is retried until it can, and before this instance serves a view.
  const invalidation = new Retry(async () => await cache.deleteMemoized(allTasks) && await routeCache.invalidateTags('tasks'))
  app.addHook('onClose', async () => { invalidation.stop() })
  const invalidate = async (): Promise<void> => { await invalidation.run() }

  app.get('/tasks', {
    // One key for everyone: the page is the same for all, once its token slot is filled per user.
    config: { cache: { ttl: 300, tags: ['tasks'], unless: hasFlash, key: () => 'tasks' } },
    onRequest: async () => { if (invalidation.pending) await invalidate() },
    // Runs after the shared copy is stored: from here on the page is this user's alone.
    onSend: async (_request, reply, payload) => {
      reply.header('cache-control', 'private, no-store')
      return typeof payload === 'string' && payload.includes(TOKEN_SLOT) ? payload.replaceAll(TOKEN_SLOT, reply.generateCsrf()) : payload
    }
  }, async (request, reply) => {
    const flash = request.session.get('flash')
    if (flash !== undefined) request.session.set('flash', undefined)
    return await reply.viewAsync('tasks', { tasks: await allTasks(), flash, token: TOKEN_SLOT })
  })

  const form = {
    // After the form is parsed (the token is in it), before it is validated.
    preValidation: app.csrfProtection,
    // Only a valid, well-formed change counts against the client's budget.
    preHandler: limitWrites
  }

  app.post<{ Body: { name?: string } }>('/tasks', {
    ...form,
    schema: { body: { type: 'object', properties: { name: { type: 'string', maxLength: 200 }, _csrf: { type: 'string' } } } }
  }, async (request, reply) => {
    const name = request.body.name?.trim() ?? ''
    if (name === '') {
      request.session.set('flash', 'Task name is required.')
    } else {
      await tasks.add(name)
      await invalidate()
    }
    return await reply.redirect('/tasks', 303)
  })

  app.post<{ Params: { id: string } }>('/tasks/:id/delete', {
    ...form,
    schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' } } } }
  }, async (request, reply) => {
    if (await tasks.delete(request.params.id)) {
      await fragments.delete(`task:${request.params.id}`)
      await invalidate()
    }
    return await reply.redirect('/tasks', 303)
  })
}
