import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler, onSendAsyncHookHandler } from 'fastify'
import { createCache, type Cache } from './cache.js'
import type { KeySampler } from './core.js'
import { RouteCache, type RouteCacheTicket } from './route-cache.js'
import type { CacheStore } from './stores/store.js'

/** `config: { cache: { ... } }` on a route caches its successful GET responses. */
export interface RouteCacheOptions {
  /** Seconds, with memcache's TTL rules. */
  ttl: number
  /**
   * The key of a request. Without it the key is the URL and the Accept header, and requests
   * that may be personal (an Authorization header, a response that varies on Cookie or
   * Authorization) are not cached: a key of your own says how users are told apart.
   */
  key?: (request: FastifyRequest) => string
  /** Requests for which the cache is skipped entirely. */
  unless?: (request: FastifyRequest) => boolean
  /** Tags to invalidate the response by, with app.routeCache.invalidateTags(). */
  tags?: readonly string[] | ((request: FastifyRequest) => readonly string[])
}

declare module 'fastify' {
  interface FastifyInstance {
    cache: Cache
    routeCache: RouteCache
  }
  interface FastifyContextConfig {
    cache?: RouteCacheOptions
  }
}

export interface CachePluginOptions {
  store: CacheStore
  namespace?: string
  /** A read replica of the store, for views that tolerate lag. */
  replica?: CacheStore
  /** One key in about `every` read or written goes to `record` (CacheOptions.sampleKeys). */
  sampleKeys?: KeySampler
}

const PERSONAL = /(^|,)\s*(cookie|authorization|\*)\s*(,|$)/i

/** Whether a response may be served to anyone else who sends the same key. */
function shareable (reply: FastifyReply, payload: unknown, ownKey: boolean): payload is string | Buffer {
  if (reply.statusCode < 200 || reply.statusCode >= 300 || reply.statusCode === 206) return false
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return false
  if (reply.hasHeader('set-cookie')) return false
  if (/\b(private|no-store)\b/i.test(String(reply.getHeader('cache-control') ?? ''))) return false
  return ownKey || !PERSONAL.test(String(reply.getHeader('vary') ?? ''))
}

export default fp<CachePluginOptions>(async function cachePlugin (app, { store, namespace, replica, sampleKeys }) {
  const cache = createCache({ store, namespace, replica, sampleKeys, logger: app.log.child({ component: 'cache' }) })
  // Under the app's namespace: two apps sharing one Redis never serve each other's pages.
  const routeCache = new RouteCache(cache.namespaced(`${cache.namespace}/routes`))
  app.decorate('cache', cache)
  app.decorate('routeCache', routeCache)
  // Registered after the Redis plugin, so this runs before its client quits.
  app.addHook('onClose', async () => { await cache.close() })

  const tickets = new WeakMap<FastifyRequest, RouteCacheTicket>()

  // Only routes that ask for caching get hooks; every other route pays nothing.
  app.addHook('onRoute', (route) => {
    const options = route.config?.cache
    if (options === undefined) return

    const lookup: onRequestAsyncHookHandler = async (request, reply) => {
      if (request.method !== 'GET' || options.unless?.(request) === true) return
      if (options.key === undefined && request.headers.authorization !== undefined) return
      const key = options.key?.(request) ?? `${request.url} ${request.headers.accept ?? ''}`
      const tags = typeof options.tags === 'function' ? options.tags(request) : options.tags ?? []
      const { hit, ticket } = await routeCache.lookup(key, tags)
      if (hit === undefined) {
        tickets.set(request, ticket)
        return
      }
      return await reply.code(hit.status).headers(hit.headers).header('x-cache', 'hit').send(hit.body)
    }

    const save: onSendAsyncHookHandler<unknown> = async (request, reply, payload) => {
      const ticket = tickets.get(request)
      if (ticket === undefined) return payload
      tickets.delete(request)
      reply.header('x-cache', 'miss')
      if (shareable(reply, payload, options.key !== undefined)) {
        try {
          await routeCache.store(ticket, {
            status: reply.statusCode,
            headers: reply.getHeaders() as Record<string, string | string[]>,
            body: payload
          }, options.ttl)
        } catch (err) {
          // A page too large for the cache is served, just not stored.
          request.log.warn({ err, url: request.url }, 'response not cached')
        }
      }
      return payload
    }

    // The route's own onRequest hooks run before the lookup; its onSend hooks after the
    // response is stored, so they may add what must not be shared (a per-user token).
    route.onRequest = [...[route.onRequest ?? []].flat(), lookup]
    route.onSend = [save, ...[route.onSend ?? []].flat()]
  })
}, { name: 'cache', fastify: '5.x' })
