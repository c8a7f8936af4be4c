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
  app.decorate('cache', createCache({ store, namespace, logger: app.log.child({ component: 'cache' }) }))
}, { name: 'cache', fastify: '5.x' })
