import Fastify, { type FastifyInstance, type FastifyServerOptions, type Session } from 'fastify'
import accepts from '@fastify/accepts'
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import formbody from '@fastify/formbody'
import session from '@fastify/session'
import { randomBytes } from 'node:crypto'
import type { Firestore } from '@google-cloud/firestore'
import type { Redis } from 'ioredis'
import { MemoryStore, RedisStore, type RedisClient } from './cache/index.js'
import { CacheSessionStore } from './cache/session-store.js'
import cachePlugin from './cache/plugin.js'
import type { Config } from './config.js'
import { ErrorsOnlyLogController, loggerOptions, traceChildLogger } from './logger.js'
import drainPlugin from './plugins/drain.js'
import firestorePlugin from './plugins/firestore.js'
import redisPlugin, { describeClient } from './plugins/redis.js'
import securityHeaders from './plugins/security-headers.js'
import viewPlugin from './plugins/view.js'
import assetRoutes from './routes/assets.js'
import healthRoutes from './routes/health.js'
import statsRoutes from './routes/stats.js'
import visitsRoutes, { prefersJson } from './routes/visits.js'
import { FirestoreGreetingsRepository, MemoryGreetingsRepository, type GreetingsRepository } from './guestbook/greetings.js'
import guestbookRoutes from './routes/guestbook.js'
import tasksRoutes from './routes/tasks.js'
import { FirestoreTasksRepository, MemoryTasksRepository, type TasksRepository } from './tasks/tasks.js'
import { FirestoreVisitsRepository } from './visits/firestore-repository.js'
import { MemoryVisitsRepository } from './visits/memory-repository.js'
import { RecentVisits } from './visits/recent-visits.js'
import type { VisitsRepository } from './visits/repository.js'
import { BoundedCalls, RepositoryUnavailableError } from './lib/bounded-calls.js'
import { TooManyWritesError, writeLimit } from './lib/write-limit.js'

/** What a caller (a test, another app) may hand in instead of what the config describes. */
export interface AppDependencies {
  logger?: FastifyServerOptions['logger']
  loggerInstance?: FastifyServerOptions['loggerInstance']
  /** An existing client; the caller closes it. */
  redis?: RedisClient
  /** A client of a read replica of `redis`; the caller closes it. */
  redisReader?: Redis
  /** An existing client; the caller closes it. */
  firestore?: Firestore
  repository?: VisitsRepository
  greetings?: GreetingsRepository
  tasks?: TasksRepository
}

/**
 * Proxy trust by hop count. Fastify 5.12+ ignores a numeric trustProxy, so the
 * count is a function: the first `hops` addresses from the socket inward are
 * proxies, and the client is the next address of X-Forwarded-For.
 */
function trustHops (hops: number): FastifyServerOptions['trustProxy'] {
  return hops > 0 ? (_address: string, hop: number) => hop < hops : false
}

export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.loggerInstance === undefined
      ? { logger: deps.logger ?? loggerOptions({ level: config.logLevel, projectId: config.projectId }) }
      : { loggerInstance: deps.loggerInstance }),
    childLoggerFactory: traceChildLogger(config.projectId),
    logController: new ErrorsOnlyLogController(),
    trustProxy: trustHops(config.trustProxyHops),
    // Fastify's default answers 503 to every request that reaches a route once close() has begun,
    // even one sent before the signal on a connection already open: those are served instead.
    return503OnClosing: false
  })

  // Shutdown answers every request it has taken on, closes connections once they are idle, and
  // does not wait for connections that never send a request (src/plugins/drain.ts).
  await app.register(drainPlugin, config.drain ?? { acceptMs: 0, firstRequestMs: 1000 })

  await app.register(accepts)
  // Our pages load nothing but our own stylesheet and post forms to ourselves: the CSP says exactly that.
  await app.register(securityHeaders, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"]
      }
    },
    // Cloud Run serves HTTPS only; HSTS is the front end's to send for the domain.
    strictTransportSecurity: false
  })
  await app.register(formbody)
  if (config.sessionSecret === undefined) {
    app.log.warn('SESSION_SECRET is not set: cookies are signed with a key of this process only, so a form ' +
      'loaded from one instance fails its CSRF check on another; set it on Cloud Run')
  }
  const secret = config.sessionSecret ?? randomBytes(32).toString('hex')

  if (deps.redis !== undefined) await app.register(redisPlugin, { client: deps.redis, reader: deps.redisReader })
  else if (config.redis !== undefined) await app.register(redisPlugin, config.redis)
  await app.register(cachePlugin, {
    store: app.hasDecorator('redis') ? new RedisStore(app.redis) : new MemoryStore(),
    replica: app.redisReader === undefined ? undefined : new RedisStore(app.redisReader),
    namespace: config.cacheNamespace
  })
  await app.register(viewPlugin)

  let repository = deps.repository
  let greetings = deps.greetings
  let tasks = deps.tasks
  const firestoreWanted = config.firestore !== undefined || deps.firestore !== undefined
  if (firestoreWanted && (repository === undefined || greetings === undefined || tasks === undefined)) {
    if (deps.firestore !== undefined) await app.register(firestorePlugin, { client: deps.firestore })
    else if (config.firestore !== undefined) await app.register(firestorePlugin, config.firestore)
    const timeoutMs = config.firestore?.timeoutMs ?? 5000
    // Every repository shares these: one Firestore outage, one breaker.
    const calls = new BoundedCalls({ timeoutMs })
    repository ??= new FirestoreVisitsRepository(app.firestore, { collection: config.visits.collection, timeoutMs, calls })
    greetings ??= new FirestoreGreetingsRepository(app.firestore, { calls })
    tasks ??= new FirestoreTasksRepository(app.firestore, { calls })
    // onClose hooks run last-registered first: this one runs before the client is terminated.
    app.addHook('onClose', async () => { await calls.drain(2000) })
  }
  repository ??= new MemoryVisitsRepository()
  greetings ??= new MemoryGreetingsRepository()
  tasks ??= new MemoryTasksRepository()

  app.setErrorHandler(async (err, request, reply) => {
    let answer: { statusCode: number, error: string, title: string, message: string, retryAfter: number }
    if (err instanceof RepositoryUnavailableError) {
      request.log.error({ err }, 'repository unavailable')
      answer = { statusCode: 503, error: 'Service Unavailable', title: 'Temporarily unavailable', message: 'The database is not answering right now.', retryAfter: 5 }
    } else if (err instanceof TooManyWritesError) {
      answer = { statusCode: 429, error: 'Too Many Requests', title: 'Too many changes', message: err.message, retryAfter: err.retryAfterSeconds }
    } else {
      throw err
    }
    const { statusCode, error, title, message, retryAfter } = answer
    reply.code(statusCode).header('retry-after', String(retryAfter)).header('cache-control', 'no-store')
    if (prefersJson(request)) return { statusCode, error, message }
    return await reply.viewAsync('unavailable', { title, message })
  })

  // Counted in Redis when there is one, so the budget holds across instances.
  const limitWrites = await writeLimit(app, {
    max: config.rateLimitWrites,
    redis: app.hasDecorator('redis') ? app.redis : undefined,
    namespace: config.cacheNamespace,
    available: () => app.cache.available
  })

  const recentVisits = new RecentVisits({
    repository,
    cache: app.cache.namespaced(`${config.cacheNamespace}/visits`),
    limit: config.visits.limit,
    ttlSeconds: config.visits.cacheTtlSeconds,
    // The version changes whenever the cached value's shape does.
    key: `recent:v1:${config.visits.collection}`,
    budgetMs: config.firestore?.timeoutMs ?? 5000
  })
  app.addHook('onClose', async () => { await recentVisits.close() })
  await app.register(visitsRoutes, { recentVisits, limit: config.visits.limit, ipMode: config.visits.ipMode, limitWrites })
  // Cookies exist for the forms (CSRF tokens) only: the visits page and the others do not pay for them.
  await app.register(async function withForms (forms) {
    await forms.register(cookie, { secret })
    // Double-submit tokens in a signed cookie: no server-side session is written to protect a form.
    await forms.register(csrf, { sessionPlugin: '@fastify/cookie', cookieOpts: { signed: true, httpOnly: true, sameSite: 'lax', secure: 'auto', path: '/' } })
    // Rendered greetings live 10 s anyway: replication lag is no news to them.
    await forms.register(guestbookRoutes, { greetings, cache: forms.cache.namespaced(`${config.cacheNamespace}/guestbook`, { reads: 'replica' }), limitWrites })
    // Sessions exist for the task list's flash message only: the other pages do not pay for them.
    await forms.register(withSessions)
  })
  async function withSessions (scope: FastifyInstance): Promise<void> {
    // Only for visitors with something to keep: no cookie, no write otherwise.
    await scope.register(session, {
      secret,
      cookieName: 'sid',
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto', maxAge: 86_400_000 },
      store: new CacheSessionStore<Session>(scope.cache.namespaced(`${config.cacheNamespace}/sessions`))
    })
    await scope.register(tasksRoutes, {
      tasks: tasks!,
      cache: scope.cache.namespaced(`${config.cacheNamespace}/tasks`),
      routeCache: scope.routeCache,
      fragments: scope.fragments,
      limitWrites
    })
  }
  await app.register(assetRoutes)
  await app.register(healthRoutes, { cache: app.cache, repository })
  await app.register(statsRoutes, {
    // Counting items scans the keyspace: a read replica takes that load off the primary.
    cache: app.cache.namespaced(app.cache.namespace, { reads: 'replica' }),
    visitsUsage: repository.usage,
    namespaces: ['visits', 'guestbook', 'tasks', 'routes', 'fragments', 'sessions'].map((part) => `${config.cacheNamespace}/${part}`)
  })

  app.log.info({
    cache: app.cache.store.kind === 'redis'
      ? `redis at ${describeClient(app.redis)}${app.redisReader === undefined ? '' : `, reads that tolerate lag at ${describeClient(app.redisReader)}`}`
      : 'in-process memory (no REDISHOST)',
    visits: repository.kind === 'firestore'
      ? `firestore${config.firestore?.emulatorHost === undefined ? '' : ` emulator at ${config.firestore.emulatorHost}`}, collection ${config.visits.collection}`
      : 'in-memory, lost on restart (no Firestore configured)'
  }, 'dependencies in use')

  return app
}
