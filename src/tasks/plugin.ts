import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify'
import type { Cache, RouteCache } from '../cache/index.js'
import { fromOurOwnPage, isCsrfFailure, typedText } from '../http/forms.js'
import { Retry } from '../lib/retry.js'
import type { WriteLimit } from '../http/write-limit.js'
import type { TasksRepository } from './repository.js'
import { prefersJson } from '../http/negotiation.js'

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
const MAX_NAME = 200
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

  /** The page with the token slot, to be filled for the user it is sent to. */
  async function page (reply: FastifyReply, form: { flash?: string, name?: string } = {}): Promise<string> {
    return await reply.viewAsync('tasks', { tasks: await allTasks(), token: TOKEN_SLOT, ...form })
  }

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
    return await page(reply, { flash })
  })

  /**
   * A form that expired (open across a restart, or too old) shows the list again with a fresh
   * token, and the name typed when the post came from our own page (see fromOurOwnPage).
   */
  function expiredForm (what: string, keepName: boolean): RouteShorthandOptions['errorHandler'] {
    return async (err, request, reply) => {
      if (!isCsrfFailure(err) || prefersJson(request)) throw err
      const ours = fromOurOwnPage(request)
      const name = keepName && ours ? typedText(request.body, 'name', MAX_NAME) : undefined
      const flash = !ours
        ? `The form had expired or was not sent from this page, so ${what}. Please try again.`
        : `The form had expired, so ${what}. ${keepName ? 'Here it is again: please add it once more.' : 'Please try again.'}`
      const html = await page(reply, { flash, name })
      return await reply.code(403).header('cache-control', 'private, no-store').type('text/html; charset=utf-8').send(html.replaceAll(TOKEN_SLOT, reply.generateCsrf()))
    }
  }

  const form = {
    // After the form is parsed (the token is in it), before it is validated.
    preValidation: app.csrfProtection,
    // Only a valid, well-formed change counts against the client's budget.
    preHandler: limitWrites
  }

  app.post<{ Body: { name?: string } }>('/tasks', {
    ...form,
    errorHandler: expiredForm('the task was not added', true),
    schema: { body: { type: 'object', properties: { name: { type: 'string', maxLength: MAX_NAME }, _csrf: { type: 'string' } } } }
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
    errorHandler: expiredForm('nothing was deleted', false),
    schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' } } } }
  }, async (request, reply) => {
    if (await tasks.delete(request.params.id)) {
      await fragments.delete(`task:${request.params.id}`)
      await invalidate()
    }
    return await reply.redirect('/tasks', 303)
  })
}
