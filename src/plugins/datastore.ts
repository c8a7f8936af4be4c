import fp from 'fastify-plugin'
import type { Datastore, Key } from '@google-cloud/datastore'
import { BoundedCalls } from './bounded-calls.js'
import { Status, superviseClient } from './database.js'
import { connectionFails } from './firestore.js'

declare module 'fastify' {
  interface FastifyInstance {
    datastore: Datastore
    /** Every Datastore call of the app goes through them: one outage, one breaker. */
    datastoreCalls: BoundedCalls
  }
}

export interface DatastoreConnection {
  projectId?: string
  /** `(default)`, or a named database in Datastore mode. */
  databaseId: string
  /** Every key read and written lives in it; unset: the default namespace. */
  namespace?: string
  /** host:port of the emulator running in Datastore mode. */
  emulatorHost?: string
}

/** Where the client's calls go, for log lines and errors. */
export function describeDatastore ({ projectId, databaseId, namespace, emulatorHost }: Partial<DatastoreConnection>): string {
  const where = emulatorHost !== undefined
    ? `the Datastore-mode emulator at ${emulatorHost}`
    : `datastore.googleapis.com (project ${projectId ?? 'of the credentials'}, database ${databaseId ?? '(default)'})`
  return namespace === undefined ? where : `${where}, namespace ${namespace}`
}

/**
 * A key's last part as this service's ids: its name, or its numeric id in decimal (NDB's
 * allocated ids go past 2^53, so never as a JavaScript number).
 */
export function idOf (key: Key): string {
  return key.name ?? String(key.id)
}

/** NDB's allocated ids are decimal digits; the names this service gives never are. */
const NUMERIC_ID = /^[1-9][0-9]{0,18}$/

/** The key part an id stands for, the reverse of idOf. */
export function keyPart (client: Datastore, id: string): string | ReturnType<Datastore['int']> {
  return NUMERIC_ID.test(id) ? client.int(id) : id
}

/**
 * A read's own deadline: the client retries an unanswered read for a minute by default, long
 * after the request gave up on it. (A commit is not retried: it fails at once.)
 */
export function bounded (timeoutMs: number): { gaxOptions: { timeout: number } } {
  return { gaxOptions: { timeout: timeoutMs } }
}

const { DEADLINE_EXCEEDED, NOT_FOUND, PERMISSION_DENIED, FAILED_PRECONDITION, UNAVAILABLE, UNAUTHENTICATED } = Status

/**
 * What to check when Datastore does not answer. `role` is what the credentials need: the
 * service reads and writes, the copy command only reads its source.
 */
export function datastoreHint (failure: unknown, { projectId, databaseId, emulatorHost }: Partial<DatastoreConnection>,
  role = 'roles/datastore.user'): string {
  const err = ((failure as { cause?: unknown }).cause ?? failure) as Error & { code?: unknown }
  const message = String(err?.message ?? '')
  if (emulatorHost !== undefined) {
    if (err?.code === 'ECONNREFUSED' || /ECONNREFUSED|No connection established/.test(message)) {
      return `nothing listens at ${emulatorHost}: check DATASTORE_EMULATOR_HOST against the emulator's --host-port, ` +
        'and that it runs with --database-mode=datastore-mode'
    }
    if (err?.code === 'ENOTFOUND' || /ENOTFOUND|EAI_AGAIN|Name resolution/.test(message)) {
      return `the host of DATASTORE_EMULATOR_HOST=${emulatorHost} is unknown: check the name`
    }
    if (/datastore mode|firestore mode|native mode/i.test(message) || err?.code === FAILED_PRECONDITION) {
      return `the emulator at ${emulatorHost} runs in native mode: start it with --database-mode=datastore-mode`
    }
    return `the emulator at ${emulatorHost} does not answer: check DATASTORE_EMULATOR_HOST, and that the emulator has finished starting`
  }
  if (err?.code === UNAUTHENTICATED || /default credentials|access token|invalid_grant/i.test(message)) {
    return 'no usable Google credentials: on Cloud Run the service account provides them; elsewhere run ' +
      '`gcloud auth application-default login`, or set DATASTORE_EMULATOR_HOST to use the emulator'
  }
  if (/project id/i.test(message)) return 'no Google Cloud project: set GOOGLE_CLOUD_PROJECT'
  if (err?.code === PERMISSION_DENIED) {
    return `the credentials may not use Datastore in project ${projectId ?? '(of the credentials)'}: check GOOGLE_CLOUD_PROJECT, ` +
      `and grant the service account ${role}`
  }
  if (err?.code === NOT_FOUND || err?.code === FAILED_PRECONDITION || /native mode|firestore mode/i.test(message)) {
    return `no Datastore-mode database ${databaseId ?? '(default)'} in project ${projectId ?? '(of the credentials)'}: ` +
      'check DATASTORE_DATABASE and GOOGLE_CLOUD_PROJECT (gcloud firestore databases list shows each database\'s type)'
  }
  if (err?.code === UNAVAILABLE || err?.code === DEADLINE_EXCEEDED || /no answer/.test(message)) {
    return 'no answer from datastore.googleapis.com: check the service\'s egress (--vpc-egress=private-ranges-only keeps ' +
      'Google APIs reachable; all-traffic needs Private Google Access or Cloud NAT)'
  }
  return 'Datastore refused the call: see err for its reason'
}

export async function createDatastore ({ projectId, databaseId, namespace, emulatorHost }: DatastoreConnection): Promise<Datastore> {
  // Loaded on demand, as the Firestore client is: the other modes never need it.
  const [{ Datastore }, { grpc }] = await Promise.all([import('@google-cloud/datastore'), import('google-gax')])
  return new Datastore({
    // The emulator accepts any project; a demo- project can never reach a real one.
    projectId: projectId ?? (emulatorHost === undefined ? undefined : 'demo-visitme'),
    // The client's name for the default database is the empty one.
    ...(databaseId === '(default)' ? {} : { databaseId }),
    namespace,
    // Plain text to the emulator whatever its host is called (the client assumes TLS for a name other than localhost).
    ...(emulatorHost === undefined ? {} : { apiEndpoint: emulatorHost, sslCreds: grpc.credentials.createInsecure() })
  })
}

/** Closes the client's channels; it has no close of its own, its generated clients (typed as bare stubs) do. */
export async function closeDatastore (client: Datastore): Promise<void> {
  const generated = [...client.clients_.values()] as unknown as Array<{ close: () => Promise<void> }>
  await Promise.all(generated.map(async (stub) => { await stub.close() }))
}

export interface DatastorePluginOptions extends Partial<DatastoreConnection> {
  /** Upper bound of one call (a request's deadline may cut it shorter); the client's own retries can otherwise run for a minute. */
  timeoutMs: number
  /** An existing client; the caller closes it. Otherwise one is made from the connection. */
  client?: Datastore
}

/** A kind the probe may query anywhere: a keys-only query of an empty kind costs the minimum. */
const PROBE_KIND = 'Health'

export default fp<DatastorePluginOptions>(async function datastorePlugin (app, { client: given, timeoutMs, ...connection }) {
  const calls = new BoundedCalls({
    timeoutMs,
    name: 'Datastore',
    target: describeDatastore(connection),
    // A refused emulator port fails a call at once instead of after the client's retries.
    connectionFails: connection.emulatorHost === undefined ? undefined : async () => await connectionFails(connection.emulatorHost!, 500)
  })
  const client = given ?? await createDatastore({ ...connection, databaseId: connection.databaseId ?? '(default)' })
  const ping = async (): Promise<void> => {
    await calls.run('answer a query', undefined, async (ms) => await client.runQuery(client.createQuery(PROBE_KIND).select('__key__').limit(1), bounded(ms)))
  }
  app.decorate('datastore', client)
  app.decorate('datastoreCalls', calls)
  superviseClient(app, {
    name: 'datastore',
    where: describeDatastore(connection),
    calls,
    ping,
    hint: (err) => datastoreHint(err, connection),
    close: given === undefined ? async () => await closeDatastore(client) : undefined
  })
}, { name: 'datastore', fastify: '5.x' })
