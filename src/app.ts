import type { HelmetOptions } from 'helmet'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type Session } from 'fastify'
import accepts from '@fastify/accepts'
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import formbody from '@fastify/formbody'
import session from '@fastify/session'
import { randomBytes } from 'node:crypto'
import type { Datastore } from '@google-cloud/datastore'
import type { Firestore } from '@google-cloud/firestore'
import type { Redis } from 'ioredis'
import { MemoryStore, RedisStore, type RedisClient } from './cache/index.js'
import { CacheSessionStore } from './cache/session-store.js'
import cachePlugin from './cache/plugin.js'
import type { Config } from './config.js'
import { ErrorsOnlyLogController, loggerOptions, traceChildLogger } from './logger.js'
import drainPlugin from './plugins/drain.js'
import datastorePlugin, { describeDatastore } from './plugins/datastore.js'
import firestorePlugin, { connectionFails, describeFirestore, firestoreHint } from './plugins/firestore.js'
import redisPlugin, { describeClient } from './plugins/redis.js'
import errorPages, { EarlyErrors } from './plugins/error-pages.js'
import securityHeadersPlugin, { securityHeaders } from './plugins/security-headers.js'
import viewPlugin from './plugins/view.js'
import assetRoutes from './routes/assets.js'
import healthRoutes from './routes/health.js'
import statsRoutes from './routes/stats.js'
import visitsRoutes from './routes/visits.js'
import { DatastoreGreetingsRepository } from './guestbook/datastore-repository.js'
import { FirestoreGreetingsRepository, MemoryGreetingsRepository, type GreetingsRepository } from './guestbook/greetings.js'
import guestbookRoutes from './routes/guestbook.js'
import tasksRoutes from './routes/tasks.js'
import { DatastoreTasksRepository } from './tasks/datastore-repository.js'
import { FirestoreTasksRepository, MemoryTasksRepository, type TasksRepository } from './tasks/tasks.js'
import { DatastoreVisitsRepository } from './visits/datastore-repository.js'
import { FirestoreVisitsRepository } from './visits/firestore-repository.js'
import { MemoryVisitsRepository } from './visits/memory-repository.js'
import { RecentVisits } from './visits/recent-visits.js'
import type { VisitsRepository } from './visits/repository.js'
import { BoundedCalls } from './lib/bounded-calls.js'
import { writeLimit } from './lib/write-limit.js'

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
  /** An existing client of a Datastore-mode database; the caller closes it. */
  datastore?: Datastore
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

/** Our pages load nothing but our own stylesheet and icon and post forms to ourselves: the CSP says exactly that. */
const helmetOptions: HelmetOptions = {
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
}

export async function buildApp (config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const early = new EarlyErrors()
  const app = Fastify({
    clientErrorHandler: early.clientError,
    frameworkErrors: early.frameworkError,
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

  // The first line says which parts are real; what each part then reports follows it.
  app.log.info(describeDependencies(config, deps), 'dependencies in use')

  // Shutdown answers every request it has taken on, closes connections once they are idle, and
  // does not wait for connections that never send a request (src/plugins/drain.ts).
  await app.register(drainPlugin, config.drain ?? { acceptMs: 0, firstRequestMs: 1000 })

  await app.register(accepts)
  await app.register(securityHeadersPlugin, helmetOptions)
  await app.register(formbody)
  if (config.sessionSecret === undefined && config.onCloudRun) {
    app.log.warn('SESSION_SECRET is not set: cookies are signed with a key of this instance only, so a form ' +
      'loaded from one instance fails its CSRF check on another; set it from Secret Manager')
  } else if (config.sessionSecret === undefined) {
    app.log.info('SESSION_SECRET is not set: form cookies are signed with a key of this process')
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
  await app.register(errorPages, { early, securityHeaders: securityHeaders(helmetOptions) })

  // The client this app made is tried once at start-up: its set-up is paid before the first
  // page, and a mistake in the configuration is reported before anyone asks for a page.
  let storeWarmUp: Promise<void> | undefined
  // A check still running when the app closes fails because of the close: no warning for that.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  function checkFirestore (repository: VisitsRepository, connection: Parameters<typeof firestoreHint>[1]): Promise<void> {
    const started = Date.now()
    const check = repository.ping()
    check.then(() => {
      app.log.info({ firestore: describeFirestore(connection), ms: Date.now() - started }, 'firestore answered')
    }, (err: unknown) => {
      if (closing) return
      app.log.warn({ firestore: describeFirestore(connection), err, hint: firestoreHint(err, connection) },
        'firestore unreachable; pages that need it answer 503 until it is back')
    })
    return check
  }

  let repository = deps.repository
  let greetings = deps.greetings
  let tasks = deps.tasks
  const firestoreWanted = config.firestore !== undefined || deps.firestore !== undefined
  if (firestoreWanted && (repository === undefined || greetings === undefined || tasks === undefined)) {
    const timeoutMs = config.firestore?.timeoutMs ?? 5000
    const emulatorHost = config.firestore?.emulatorHost
    // Every repository shares these: one Firestore outage, one breaker.
    const calls = new BoundedCalls({
      timeoutMs,
      target: describeFirestore(config.firestore ?? {}),
      // A refused emulator port fails a call at once instead of after the client's retries.
      connectionFails: emulatorHost === undefined ? undefined : async () => await connectionFails(emulatorHost, 500)
    })
    const drain = async () => await calls.drain(2000)
    if (deps.firestore !== undefined) await app.register(firestorePlugin, { client: deps.firestore, drain })
    else if (config.firestore !== undefined) await app.register(firestorePlugin, { ...config.firestore, drain })
    const ownRepository = repository === undefined && deps.firestore === undefined
    repository ??= new FirestoreVisitsRepository(app.firestore, { collection: config.visits.collection, timeoutMs, calls })
    greetings ??= new FirestoreGreetingsRepository(app.firestore, { calls })
    tasks ??= new FirestoreTasksRepository(app.firestore, { calls })
    if (ownRepository) storeWarmUp = checkFirestore(repository, config.firestore ?? {})
  }
  // An App Engine app's existing data, where NDB wrote it (VISITS_STORE=datastore).
  const datastoreWanted = config.datastore !== undefined || deps.datastore !== undefined
  if (datastoreWanted && (repository === undefined || greetings === undefined || tasks === undefined)) {
    const timeoutMs = config.datastore?.timeoutMs ?? 5000
    await app.register(datastorePlugin, { ...config.datastore, timeoutMs, client: deps.datastore })
    repository ??= new DatastoreVisitsRepository(app.datastore, { timeoutMs, calls: app.datastoreCalls })
    greetings ??= new DatastoreGreetingsRepository(app.datastore, { calls: app.datastoreCalls })
    tasks ??= new DatastoreTasksRepository(app.datastore, { calls: app.datastoreCalls })
    storeWarmUp = app.datastoreWarmUp
  }
  repository ??= new MemoryVisitsRepository()
  greetings ??= new MemoryGreetingsRepository()
  tasks ??= new MemoryTasksRepository()

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
    budgetMs: config.firestore?.timeoutMs ?? config.datastore?.timeoutMs ?? 5000
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
  await app.register(healthRoutes, { cache: app.cache, repository, warmUp: storeWarmUp })
  await app.register(statsRoutes, {
    // Counting items scans the keyspace: a read replica takes that load off the primary.
    cache: app.cache.namespaced(app.cache.namespace, { reads: 'replica' }),
    visitsUsage: repository.usage,
    namespaces: ['visits', 'guestbook', 'tasks', 'routes', 'fragments', 'sessions'].map((part) => `${config.cacheNamespace}/${part}`)
  })

  return app
}

/** What the app will use, from the configuration and what the caller hands in, before anything connects. */
function describeDependencies (config: Config, deps: AppDependencies): { cache: string, visits: string } {
  const redis = config.redis
  const cache = deps.redis !== undefined
    ? `redis at ${describeClient(deps.redis)}${deps.redisReader === undefined ? '' : `, reads that tolerate lag at ${describeClient(deps.redisReader)}`}`
    : redis !== undefined
      ? `redis at ${redis.cluster === true ? 'cluster at ' : ''}${redis.host}:${redis.port}` +
        `${redis.read === undefined ? '' : `, reads that tolerate lag at ${redis.read.host}:${redis.read.port}`}`
      : 'in-process memory (no REDISHOST)'
  const kind = deps.repository?.kind ??
    (config.firestore !== undefined || deps.firestore !== undefined ? 'firestore' : config.datastore !== undefined || deps.datastore !== undefined ? 'datastore' : 'memory')
  if (kind === 'datastore') return { cache, visits: `datastore mode, ${describeDatastore(config.datastore ?? {})}, kinds Visit, Greeting and Task` }
  const visits = kind === 'firestore'
    ? `firestore${config.firestore?.emulatorHost === undefined
      ? config.firestore === undefined ? '' : ` (project ${config.firestore.projectId ?? 'of the credentials'}, database ${config.firestore.databaseId})`
      : ` emulator at ${config.firestore.emulatorHost}`}, collection ${config.visits.collection}`
    : 'in-memory, lost on restart (no Firestore configured)'
  return { cache, visits }
}
