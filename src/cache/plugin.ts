import fp from 'fastify-plugin'
import { createCache, type Cache } from './cache.js'
import type { Store } from './stores/store.js'

declare module 'fastify' {
  interface FastifyInstance {
    cache: Cache
  }
}

export interface CachePluginOptions {
  store: Store
  namespace?: string
}

export default fp<CachePluginOptions>(async function cachePlugin (app, { store, namespace }) {
  const cache = createCache({ store, namespace, logger: app.log.child({ component: 'cache' }) })
  app.decorate('cache', cache)
  // Registered after the Redis plugin, so this runs before its client quits.
  app.addHook('onClose', async () => { await cache.close() })
}, { name: 'cache', fastify: '5.x' })
