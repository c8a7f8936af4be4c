import Fastify, { type FastifyInstance } from 'fastify'
import { pino } from 'pino'
import formbody from '@fastify/formbody'
import { MemoryStore, RedisStore } from '@visitme/memcache'
import cachePlugin from '@visitme/memcache/fastify'
import { hotKeysSampler, startRecording } from './admin/recording.js'
import type { Config } from './config.js'
import { describeDependencies, type AppDependencies } from './dependencies.js'
import guestbookPlugin from './guestbook/plugin.js'
import { guestbookNamespace } from './guestbook/cache-keys.js'
import assets from './http/assets.js'
import errorPages, { EarlyErrors } from './http/error-pages.js'
import { cookieSecret } from './http/forms.js'
import health from './http/health.js'
import { lazyValidators } from './http/lazy-validators.js'
import securityHeadersPlugin, { helmetOptions, securityHeaders } from './http/security-headers.js'
import { sessionsNamespace } from './http/sessions.js'
import { trustHops } from './http/trust-proxy.js'
import writeLimit from './http/write-limit.js'
import { loggerOptions, RequestLogs } from './logger.js'
import datastorePlugin from './plugins/datastore.js'
import drainPlugin from './plugins/drain.js'
import firestorePlugin from './plugins/firestore.js'
import redisPlugin from './plugins/redis.js'
import viewPlugin from './plugins/view.js'
import statsPlugin from './stats/plugin.js'
import { tasksNamespace } from './tasks/cache-keys.js'
import tasksPlugin from './tasks/plugin.js'
import { visitsNamespace } from './visits/cache-keys.js'
import visitsPlugin, { visitsRepository } from './visits/plugin.js'

export type { AppDependencies } from './dependencies.js'

/** The shared plugins in the order they depend on each other, then one register per feature. */
export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const early = new EarlyErrors()
  const logger = deps.loggerInstance ?? pino(loggerOptions({ level: config.logLevel, projectId: config.projectId }))
  // Fastify is given no logger of its own: with one, it adds and removes two listeners on every
  // response, to log each request's end; we keep only failed requests (Cloud Run logs every request)
  // and log them where they fail. The app's logger is app.log (set below), and each request's is
  // made from it, on first use (RequestLogs). (README, Performance: what a cached page saves.)
  const app = Fastify({
    clientErrorHandler: early.clientError,
    frameworkErrors: early.frameworkError,
    logController: new RequestLogs(logger, config.projectId, deps.telemetry?.traceOf),
    trustProxy: trustHops(config.trustProxyHops),
    schemaController: { compilersFactory: { buildValidator: lazyValidators() } },
    // Fastify's default answers 503 to every request that reaches a route once close() has begun,
    // even one sent before the signal on a connection already open: those are served instead.
    return503OnClosing: false
  })

  app.log = logger
  // The first line says which parts are real; what each part then reports follows it.
  app.log.info(describeDependencies(config, deps), 'dependencies in use')

  // Shutdown answers every request it has taken on, closes connections once they are idle, and
  // does not wait for connections that never send a request (src/plugins/drain.ts).
  await app.register(drainPlugin, config.drain ?? { acceptMs: 0, firstRequestMs: 1000 })
  // Before any route, so each is traced; only when telemetry was started (src/telemetry/).
  if (deps.telemetry !== undefined) await deps.telemetry.register(app)
  await app.register(securityHeadersPlugin, helmetOptions)
  await app.register(formbody)
  const secret = cookieSecret(config, app.log)
  // The cache console's hot keys: the cache hands a sample of its keys to this counter.
  const hotKeys = hotKeysSampler()
  if (deps.redis !== undefined) await app.register(redisPlugin, { client: deps.redis, reader: deps.redisReader })
  else if (config.redis !== undefined) await app.register(redisPlugin, config.redis)
  await app.register(cachePlugin, {
    store: app.hasDecorator('redis') ? new RedisStore(app.redis) : new MemoryStore(),
    replica: app.redisReader === undefined ? undefined : new RedisStore(app.redisReader),
    namespace: config.cacheNamespace,
    sampleKeys: hotKeys
  })
  // Recorded on every instance, so a console served anywhere on this Redis sees all the traffic.
  const recording = startRecording(app, hotKeys)
  await app.register(viewPlugin)
  await app.register(errorPages, { early, securityHeaders: securityHeaders(helmetOptions) })
  // The time one request may spend in the database, whichever it is.
  const databaseTimeoutMs = (config.datastore ?? config.firestore)?.timeoutMs ?? 5000
  if (deps.firestore !== undefined || config.firestore !== undefined) {
    await app.register(firestorePlugin, { ...config.firestore, timeoutMs: databaseTimeoutMs, client: deps.firestore, thread: deps.telemetry === undefined || config.telemetry?.traces !== true })
  }
  // An App Engine app's data where NDB left it (VISITS_STORE=datastore).
  if (deps.datastore !== undefined || config.datastore !== undefined) {
    await app.register(datastorePlugin, { ...config.datastore, timeoutMs: databaseTimeoutMs, client: deps.datastore })
  }
  await app.register(writeLimit, { max: config.rateLimitWrites })

  // Made here, not in its plugin: the stats page shows what this repository has asked of the database.
  const visits = deps.repository ?? visitsRepository(app, config.visits)
  await app.register(visitsPlugin, { ...config.visits, budgetMs: databaseTimeoutMs, repository: visits })
  await app.register(guestbookPlugin, { secret, greetings: deps.greetings })
  await app.register(tasksPlugin, { secret, tasks: deps.tasks })
  await app.register(assets)
  await app.register(health, {})
  // Listed from the start, before any of them is read.
  const namespaces = [visitsNamespace, guestbookNamespace, tasksNamespace, sessionsNamespace].map((of) => of(config.cacheNamespace))
  await app.register(statsPlugin, { namespaces, visitsUsage: visits.usage })
  // Off unless configured: then no route answers under /admin/ but the app's 404. Imported only then:
  // its IAP verifier (google-auth-library) would otherwise cost every instance's cold start.
  if (config.admin !== undefined) {
    const { default: adminPlugin } = await import('./admin/plugin.js')
    await app.register(adminPlugin, {
      prefix: '/admin',
      ...config.admin,
      secret,
      namespaces: [...namespaces, app.routeCache.cache.namespace, app.fragments.namespace],
      recording,
      iapKeys: deps.iapKeys
    })
  }
  return app
}
