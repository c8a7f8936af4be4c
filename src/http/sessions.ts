import session from '@fastify/session'
import type { Session } from 'fastify'
import fp from 'fastify-plugin'
import { CacheSessionStore } from '@visitme/memcache/session'

/** The sessions' cache namespace, under the app's. */
export const sessionsNamespace = (cacheNamespace: string): string => `${cacheNamespace}/sessions`

/** Sessions kept in the cache, for the scope that registers it (after forms, whose cookies they use). */
export default fp<{ secret: string }>(async function sessions (app, { secret }) {
  // Only for visitors with something to keep: no cookie, no write otherwise.
  await app.register(session, {
    secret,
    cookieName: 'sid',
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: 86_400_000 },
    store: new CacheSessionStore<Session>(app.cache.namespaced(sessionsNamespace(app.cache.namespace)))
  })
}, { name: 'sessions', fastify: '5.x', dependencies: ['forms', 'cache'] })
