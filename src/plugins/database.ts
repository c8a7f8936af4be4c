import type { Datastore } from '@google-cloud/datastore'
import type { FastifyInstance } from 'fastify'
import type { BoundedCalls } from './bounded-calls.js'
import type { FirestoreOps } from './firestore-ops.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The database the app's data lives in, as /health asks it. */
    database: DatabaseProbe
  }
}

export interface DatabaseProbe {
  name: 'firestore' | 'datastore'
  /** Resolves when the database answers a query. */
  ping: () => Promise<void>
  /**
   * The start-up call of a client this app made, which sets up its channel and may outlast a
   * health probe: until it ends the database is starting, not down. Undefined for a client handed in.
   */
  warmUp: Promise<void> | undefined
}

/** gRPC status codes both clients answer with: the mistakes a set-up makes, and a create that finds its key taken. */
export const Status = {
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16
} as const

/** How a feature keeps its data in each database the app may have. */
export interface RepositoryMakers<R> {
  firestore: (db: FirestoreOps, calls: BoundedCalls) => R
  /** An App Engine app's data, where NDB left it. */
  datastore: (client: Datastore, calls: BoundedCalls) => R
  /** The embedded mode. */
  memory: () => R
}

/** A feature's repository in the database the app has: Firestore, Datastore mode, or memory. */
export function repositoryFor<R> (app: FastifyInstance, make: RepositoryMakers<R>): R {
  if (app.hasDecorator('firestore')) return make.firestore(app.firestore, app.firestoreCalls)
  if (app.hasDecorator('datastore')) return make.datastore(app.datastore, app.datastoreCalls)
  return make.memory()
}

export interface Supervision {
  /** The database as log lines name it, and the field that says where it is. */
  name: 'firestore' | 'datastore'
  where: string
  calls: BoundedCalls
  ping: () => Promise<void>
  /** What to check when the start-up call fails. */
  hint: (err: unknown) => string
  /** Closes a client the plugin made; undefined for one handed in, which its owner closes. */
  close: (() => Promise<unknown>) | undefined
}

/** How long after the app is ready the start-up call of its database is made. */
const WARM_UP_DELAY_MS = 200

/**
 * What a database plugin does around its client. A client it made is tried once just after
 * start-up: its set-up is paid before most pages that need it, and a mistake in the configuration
 * is reported before anyone asks for such a page (the answer is the warm-up, returned). At close, the calls given
 * up on are drained before the client is closed. The app's `database` is this one.
 */
export function superviseClient (app: FastifyInstance, { name, where, calls, ping, hint, close }: Supervision): void {
  // A check still running when the app closes fails because of the close: no warning for that.
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onClose', async () => {
    const drained = await calls.drain(2000)
    if (close === undefined) return
    if (!drained) {
      // A client closed under calls it still retries fails them with unhandled rejections: leave
      // them to end by themselves (the process exits after close anyway).
      app.log.warn(`${name} calls given up on are still retried by the client; it is left to end them`)
      return
    }
    // Bounded: a close waits for every pending call, and shutdown has a deadline.
    await Promise.race([close(), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
  })
  let started = 0
  let startWarmUp: (() => void) | undefined
  const warmUp = close === undefined
    ? undefined
    : new Promise<void>((resolve, reject) => {
      startWarmUp = () => {
        started = Date.now()
        ping().then(resolve, reject)
      }
    })
  app.decorate<DatabaseProbe>('database', { name, ping, warmUp })
  if (warmUp === undefined) return
  // Shortly after the app is ready, not during its start: the first page (served from the cache,
  // most often) does not wait for the client to load. On Cloud Run it runs before any traffic,
  // while the startup probe waits for its next period.
  let timer: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => { timer = setTimeout(startWarmUp!, WARM_UP_DELAY_MS) })
  app.addHook('preClose', async () => { clearTimeout(timer) })
  warmUp.then(() => {
    app.log.info({ [name]: where, ms: Date.now() - started }, `${name} answered`)
  }, (err: unknown) => {
    if (closing) return
    app.log.warn({ [name]: where, err, hint: hint(err) }, `${name} unreachable; pages that need it answer 503 until it is back`)
  })
}
