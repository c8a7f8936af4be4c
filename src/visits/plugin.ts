import type { FastifyInstance, FastifyReply } from 'fastify'
import { prefersJson } from '../http/negotiation.js'
import { repositoryFor } from '../plugins/database.js'
import { DatastoreVisitsRepository } from './datastore-repository.js'
import { FirestoreVisitsRepository } from './firestore-repository.js'
import { MemoryVisitsRepository } from './memory-repository.js'
import { recentVisitsKey, visitsNamespace } from './cache-keys.js'
import { RecentVisits, type CacheOutcome } from './recent-visits.js'
import type { VisitsRepository } from './repository.js'
import type { Visit } from './visit.js'
import { visitorOf, type IpMode } from './visitor.js'

export interface VisitsOptions {
  /** The Firestore collection (and the list's key). */
  collection: string
  /** Visits the page lists. */
  limit: number
  cacheTtlSeconds: number
  ipMode: IpMode
  /** The time one visit may take in all. */
  budgetMs: number
  repository: VisitsRepository
}

const visitsBody = {
  type: 'object',
  required: ['visits'],
  properties: {
    visits: {
      type: 'array',
      items: {
        type: 'object',
        required: ['visitor', 'timestamp'],
        properties: { visitor: { type: 'string' }, timestamp: { type: 'string', format: 'date-time' } }
      }
    }
  }
} as const

/** The visits' repository, in the database the app has (see repositoryFor). */
export function visitsRepository (app: FastifyInstance, { collection, shards }: { collection: string, shards: number }): VisitsRepository {
  return repositoryFor<VisitsRepository>(app, {
    firestore: (db, calls) => new FirestoreVisitsRepository(db, { collection, timeoutMs: calls.timeoutMs, calls, shards }),
    datastore: (client, calls) => new DatastoreVisitsRepository(client, { timeoutMs: calls.timeoutMs, calls, shards }),
    memory: () => new MemoryVisitsRepository({ shards })
  })
}

/** The App Engine visits page: each visit stored, the recent ones listed, the list cached. */
export default async function visitsPlugin (app: FastifyInstance, { collection, limit, cacheTtlSeconds, ipMode, budgetMs, repository }: VisitsOptions): Promise<void> {
  const recentVisits = new RecentVisits({
    repository,
    cache: app.cache.namespaced(visitsNamespace(app.cache.namespace)),
    limit,
    ttlSeconds: cacheTtlSeconds,
    key: recentVisitsKey(collection),
    budgetMs
  })
  app.addHook('onClose', async () => { await recentVisits.close() })
  // A version of the list is rendered once: a hit sends the same bytes again.
  const pages = new WeakMap<readonly Visit[], Buffer>()

  function send (reply: FastifyReply, visits: readonly Visit[], cache: CacheOutcome, page: Buffer | undefined): FastifyReply {
    // The page records visits: no shared cache may answer for us.
    reply.header('x-cache', cache).header('cache-control', 'no-store').header('vary', 'Accept')
    return page === undefined ? reply.send({ visits }) : reply.type('text/html; charset=utf-8').send(page)
  }

  async function render (visits: readonly Visit[]): Promise<Buffer> {
    let page = pages.get(visits)
    if (page === undefined) {
      page = Buffer.from(await app.view('visits/index', { visits, limit }))
      pages.set(visits, page)
    }
    return page
  }

  // A HEAD would record a visit too (uptime checks, link previews): without a HEAD route it
  // answers 405, Allow: GET, as every other method does.
  app.get('/', { exposeHeadRoute: false, schema: { response: { 200: visitsBody } } }, function (request, reply) {
    const visitor = visitorOf(request.ip, request.headers['user-agent'], ipMode)
    const json = prefersJson(request)
    // The hot path, without a promise: a hit on the in-process copy, its page already rendered.
    const copy = recentVisits.hit(visitor)
    const page = copy === undefined || json ? undefined : pages.get(copy)
    if (copy !== undefined && (json || page !== undefined)) return send(reply, copy, 'hit', page)
    return (async () => {
      const { visits, cache } = copy === undefined
        ? await recentVisits.visit(visitor, { beforeWrite: async () => { await app.limitWrites(request) } })
        : { visits: copy, cache: 'hit' as const }
      return send(reply, visits, cache, json ? undefined : await render(visits))
    })()
  })
}
