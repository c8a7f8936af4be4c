import { connect } from 'node:net'
import fp from 'fastify-plugin'
import type { Firestore } from '@google-cloud/firestore'
import { BoundedCalls } from './bounded-calls.js'
import { Status, superviseClient } from './database.js'
import { clientOps, lazyOps, makeFirestore, type FirestoreConnection, type FirestoreOps } from './firestore-ops.js'
import { threadOps } from './firestore-worker.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** What the repositories ask of Firestore (src/plugins/firestore-ops.ts). */
    firestore: FirestoreOps
    /** Every Firestore call of the app goes through them: one outage, one breaker. */
    firestoreCalls: BoundedCalls
  }
}

export type { FirestoreConnection }

/** Where the client's calls go, for log lines and errors. */
export function describeFirestore ({ projectId, databaseId, emulatorHost }: Partial<FirestoreConnection>): string {
  if (emulatorHost !== undefined) return `the emulator at ${emulatorHost}`
  return `firestore.googleapis.com (project ${projectId ?? 'of the credentials'}, database ${databaseId ?? '(default)'})`
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * An error when nothing can take a connection at host:port (refused, unknown host), undefined when
 * something accepts one or the attempt stays unanswered. The Firestore client retries a refused
 * connection for a minute; this tells in milliseconds.
 */
export async function connectionFails (hostPort: string, timeoutMs: number): Promise<Error | undefined> {
  const at = hostPort.lastIndexOf(':')
  return await new Promise((resolve) => {
    const socket = connect(Number(hostPort.slice(at + 1)), hostPort.slice(0, at).replace(/^\[|\]$/g, ''))
    socket.setTimeout(timeoutMs, () => { socket.destroy(); resolve(undefined) })
    socket.once('connect', () => { socket.destroy(); resolve(undefined) })
    socket.once('error', (err: Error & { code?: string }) => {
      socket.destroy()
      resolve(err.code !== undefined && UNREACHABLE.has(err.code)
        ? Object.assign(new Error(`${err.code === 'ECONNREFUSED' ? 'connection refused by' : `${err.code} for`} ${hostPort}`), { code: err.code })
        : undefined)
    })
  })
}

const { DEADLINE_EXCEEDED, NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE, UNAUTHENTICATED } = Status

/** What to check when Firestore does not answer, for the mistakes local and Cloud Run set-ups make. */
export function firestoreHint (failure: unknown, { projectId, databaseId, emulatorHost }: Partial<FirestoreConnection>): string {
  const err = ((failure as { cause?: unknown }).cause ?? failure) as Error & { code?: unknown }
  const message = String(err?.message ?? '')
  if (emulatorHost !== undefined) {
    if (err?.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(message)) {
      return `nothing listens at ${emulatorHost}: check FIRESTORE_EMULATOR_HOST against the emulator's --host-port, and that the emulator runs`
    }
    if (err?.code === 'ENOTFOUND' || err?.code === 'EAI_AGAIN' || /ENOTFOUND|EAI_AGAIN/.test(message)) {
      return `the host of FIRESTORE_EMULATOR_HOST=${emulatorHost} is unknown: check the name`
    }
    if (/database mode/i.test(message)) {
      return `the emulator at ${emulatorHost} runs in Datastore mode: FIRESTORE_EMULATOR_HOST needs one started without --database-mode=datastore-mode`
    }
    return `the emulator at ${emulatorHost} does not answer: check FIRESTORE_EMULATOR_HOST, and that the emulator has finished starting`
  }
  if (err?.code === UNAUTHENTICATED || /default credentials|access token|invalid_grant/i.test(message)) {
    return 'no usable Google credentials: on Cloud Run the service account provides them; elsewhere run ' +
      '`gcloud auth application-default login`, or set FIRESTORE_EMULATOR_HOST to use the emulator'
  }
  if (/project id/i.test(message)) return 'no Google Cloud project: set GOOGLE_CLOUD_PROJECT'
  if (err?.code === PERMISSION_DENIED) {
    return `the credentials may not use Firestore in project ${projectId ?? '(of the credentials)'}: check GOOGLE_CLOUD_PROJECT, ` +
      'and grant the service account roles/datastore.user'
  }
  if (err?.code === NOT_FOUND || /datastore mode/i.test(message)) {
    return `no Firestore (native mode) database ${databaseId ?? '(default)'} in project ${projectId ?? '(of the credentials)'}: ` +
      'check FIRESTORE_DATABASE and GOOGLE_CLOUD_PROJECT (gcloud firestore databases list)'
  }
  if (err?.code === UNAVAILABLE || err?.code === DEADLINE_EXCEEDED || /no answer/.test(message)) {
    return 'no answer from firestore.googleapis.com: check the service\'s egress (--vpc-egress=private-ranges-only keeps ' +
      'Google APIs reachable; all-traffic needs Private Google Access or Cloud NAT)'
  }
  return 'Firestore refused the call: see err for its reason'
}

export interface FirestorePluginOptions extends Partial<FirestoreConnection> {
  /** Upper bound of one call (a request's deadline may cut it shorter); the client's own retries can otherwise run for a minute. */
  timeoutMs: number
  /** An existing client; the caller closes it. Otherwise one is made from the connection. */
  client?: Firestore
  /**
   * A client made from the connection lives in a worker thread (src/plugins/firestore-worker.ts), unless
   * false: when traces are exported it stays on this thread, where its spans join the request's trace.
   */
  thread?: boolean
}

/** A query the probe may make anywhere: an empty collection costs the minimum, one read. */
const PROBE_COLLECTION = 'health'

/** A client on this thread, for the commands and the tests; the caller closes it. */
export async function createFirestore (connection: FirestoreConnection): Promise<Firestore> {
  return makeFirestore(connection)
}

export default fp<FirestorePluginOptions>(async function firestorePlugin (app, { client: given, timeoutMs, thread: inThread = true, ...connection }) {
  const calls = new BoundedCalls({
    timeoutMs,
    target: describeFirestore(connection),
    // A refused emulator port fails a call at once instead of after the client's retries.
    connectionFails: connection.emulatorHost === undefined ? undefined : async () => await connectionFails(connection.emulatorHost!, 500)
  })
  // A client handed in is used on this thread; one made from the connection is made when first used
  // (a page served from the list in Redis never needs it), in a thread of its own unless told otherwise.
  const made = { ...connection, databaseId: connection.databaseId ?? '(default)' }
  const thread = given === undefined && inThread ? threadOps(made) : undefined
  let local: Firestore | undefined
  const ops = given !== undefined
    ? clientOps(given)
    : thread?.ops ?? lazyOps(() => clientOps(local = makeFirestore(made)))
  const ping = async (): Promise<void> => { await calls.run('answer a query', undefined, async () => await ops.query({ collection: PROBE_COLLECTION, select: [], limit: 1 })) }
  app.decorate('firestore', ops)
  app.decorate('firestoreCalls', calls)
  superviseClient(app, {
    name: 'firestore',
    where: describeFirestore(connection),
    calls,
    ping,
    hint: (err) => firestoreHint(err, connection),
    // A client handed in is its owner's to close; one never made has nothing to close.
    close: given !== undefined ? undefined : async () => { await (thread !== undefined ? thread.close() : local?.terminate()) }
  })
}, { name: 'firestore', fastify: '5.x' })
