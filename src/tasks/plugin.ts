import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify'
import forms, { fromOurOwnPage, isCsrfFailure, typedText } from '../http/forms.js'
import { prefersJson } from '../http/negotiation.js'
import sessions from '../http/sessions.js'
import { repositoryFor } from '../plugins/database.js'
import { TASKS_PAGE, taskRowKey, tasksNamespace } from './cache-keys.js'
import { DatastoreTasksRepository } from './datastore-repository.js'
import { FirestoreTasksRepository } from './firestore-repository.js'
import { MemoryTasksRepository } from './memory-repository.js'
import type { TasksRepository } from './repository.js'
import { TaskList } from './task-list.js'

declare module 'fastify' {
  interface Session {
    /** A message shown once, on the next page. */
    flash?: string
  }
}

export interface TasksOptions {
  /** Signs the form and session cookies. */
  secret: string
  /** Instead of the one the app's database gives. */
  tasks?: TasksRepository
}

/**
 * Stands in for the CSRF token in cached pages and fragments: a user's token must never
 * be stored for others. A `<` can never come out of escaped user input, so no task name
 * can imitate it.
 */
const TOKEN_SLOT = '<csrf-token>'
const MAX_NAME = 200
const hasFlash = (request: FastifyRequest) => request.session.get('flash') !== undefined

/** The task list's page, and the posts that add and delete a task. */
export default async function tasksPlugin (app: FastifyInstance, { secret, tasks }: TasksOptions): Promise<void> {
  await app.register(forms, { secret })
  // Sessions exist for the task list's flash message only: the other pages do not pay for them.
  await app.register(sessions, { secret })
  const list = new TaskList({
    tasks: tasks ?? repositoryFor<TasksRepository>(app, {
      firestore: (db, calls) => new FirestoreTasksRepository(db, { calls }),
      datastore: (client, calls) => new DatastoreTasksRepository(client, { calls }),
      memory: () => new MemoryTasksRepository()
    }),
    cache: app.cache.namespaced(tasksNamespace(app.cache.namespace)),
    routeCache: app.routeCache,
    fragments: app.fragments
  })
  app.addHook('onClose', async () => { list.close() })

  /** The page with the token slot, to be filled for the user it is sent to. */
  async function page (reply: FastifyReply, form: { flash?: string, name?: string } = {}): Promise<string> {
    return await reply.viewAsync('tasks/tasks', { tasks: await list.all(), rowKey: taskRowKey, token: TOKEN_SLOT, ...form })
  }

  app.get('/tasks', {
    // One key for everyone: the page is the same for all, once its token slot is filled per user.
    config: { cache: { ttl: 300, tags: [TASKS_PAGE], unless: hasFlash, key: () => TASKS_PAGE } },
    onRequest: async () => { if (list.stale) await list.invalidate() },
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
    preHandler: app.limitWrites
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
      await list.add(name)
    }
    return await reply.redirect('/tasks', 303)
  })

  app.post<{ Params: { id: string } }>('/tasks/:id/delete', {
    ...form,
    errorHandler: expiredForm('nothing was deleted', false),
    schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,128}$' } } } }
  }, async (request, reply) => {
    await list.delete(request.params.id)
    return await reply.redirect('/tasks', 303)
  })
}
