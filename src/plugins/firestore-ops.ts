import { createRequire } from 'node:module'
import type { DocumentData, Firestore, Query } from '@google-cloud/firestore'

export interface FirestoreConnection {
  projectId?: string
  databaseId: string
  /** host:port of the Firestore emulator. */
  emulatorHost?: string
}

const requireModule = createRequire(import.meta.url)

/** A client of the connection. The package (about 0.3 s of CPU to load) is loaded by the first call: the embedded mode never needs it. */
export function makeFirestore ({ projectId, databaseId, emulatorHost }: FirestoreConnection): Firestore {
  const { Firestore } = requireModule('@google-cloud/firestore') as typeof import('@google-cloud/firestore')
  return new Firestore({
    // The emulator accepts any project; a demo- project can never reach a real one.
    projectId: projectId ?? (emulatorHost === undefined ? undefined : 'demo-visitme'),
    databaseId,
    ignoreUndefinedProperties: true,
    ...(emulatorHost === undefined ? {} : { host: emulatorHost, ssl: false })
  })
}

/** A document as the repositories read it: its id and its fields, timestamps as Dates. */
export interface StoredDocument {
  id: string
  data: Record<string, unknown>
}

/** A query of one collection, as data: it can be sent to the thread that holds the client. */
export interface QuerySpec {
  collection: string
  where?: { field: string, op: '==', value: string | number }
  orderBy?: { field: string, direction: 'asc' | 'desc' }
  limit?: number
  /** Only these fields (select()); [] reads no field at all. */
  select?: string[]
}

/**
 * What the app asks of Firestore, each one call of the client. In the server they run in a thread
 * of their own (src/plugins/firestore-thread.ts) unless traces are exported: the client's gRPC and
 * HTTP/2 code then never runs on the thread that serves pages, where it would make V8 optimize
 * Node's own stream and nextTick code for more shapes of objects (measured: a cached page about
 * 15 % dearer). Values are plain data (strings, numbers, Dates, null): they cross threads as copies,
 * so a FieldValue sentinel cannot be one.
 */
export interface FirestoreOps {
  /** Creates the document; fails with ALREADY_EXISTS (6) when it exists. */
  create: (path: string, data: DocumentData) => Promise<void>
  /** Adds a document with a new id to the collection; answers the id. */
  add: (collection: string, data: DocumentData) => Promise<string>
  get: (path: string) => Promise<StoredDocument | undefined>
  delete: (path: string) => Promise<void>
  query: (query: QuerySpec) => Promise<StoredDocument[]>
  /** The queries read at one time, in a read-only transaction (no lock). */
  queryAtOnce: (queries: QuerySpec[]) => Promise<StoredDocument[][]>
  /** Updates the documents, in batches of at most 500 writes. */
  updateAll: (updates: Array<{ path: string, data: DocumentData }>) => Promise<void>
}

/** Fields as the repositories read them: Firestore's Timestamps become Dates (which a thread's messages carry). */
function plain (data: DocumentData | undefined): Record<string, unknown> {
  const fields: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(data ?? {})) {
    fields[name] = typeof (value as { toDate?: unknown })?.toDate === 'function' ? (value as { toDate: () => Date }).toDate() : value
  }
  return fields
}

function toQuery (db: Firestore, { collection, where, orderBy, limit, select }: QuerySpec): Query {
  let query: Query = db.collection(collection)
  if (where !== undefined) query = query.where(where.field, where.op, where.value)
  if (orderBy !== undefined) query = query.orderBy(orderBy.field, orderBy.direction)
  if (select !== undefined) query = query.select(...select)
  if (limit !== undefined) query = query.limit(limit)
  return query
}

/** The operations on a client in this thread: the worker thread's, and a client handed to the app. */
export function clientOps (db: Firestore): FirestoreOps {
  const documents = (docs: Array<{ id: string, data: () => DocumentData | undefined }>): StoredDocument[] =>
    docs.map((doc) => ({ id: doc.id, data: plain(doc.data()) }))
  return {
    create: async (path, data) => { await db.doc(path).create(data) },
    add: async (collection, data) => (await db.collection(collection).add(data)).id,
    get: async (path) => {
      const doc = await db.doc(path).get()
      return doc.exists ? { id: doc.id, data: plain(doc.data()) } : undefined
    },
    delete: async (path) => { await db.doc(path).delete() },
    query: async (query) => documents((await toQuery(db, query).get()).docs),
    queryAtOnce: async (queries) => {
      const snapshots = await db.runTransaction(async (tx) => await Promise.all(queries.map(async (query) => await tx.get(toQuery(db, query)))), { readOnly: true })
      return snapshots.map((snapshot) => documents(snapshot.docs))
    },
    updateAll: async (updates) => {
      for (let at = 0; at < updates.length; at += 500) {
        const batch = db.batch()
        for (const { path, data } of updates.slice(at, at + 500)) batch.update(db.doc(path), data)
        await batch.commit()
      }
    }
  }
}

type Forward = (op: keyof FirestoreOps) => (...args: unknown[]) => Promise<unknown>

/** Operations that each hand their call on (to a client made later, to a thread): one entry per operation. */
export function forwardingOps (forward: Forward): FirestoreOps {
  const ops: Record<keyof FirestoreOps, (...args: unknown[]) => Promise<unknown>> = {
    create: forward('create'),
    add: forward('add'),
    get: forward('get'),
    delete: forward('delete'),
    query: forward('query'),
    queryAtOnce: forward('queryAtOnce'),
    updateAll: forward('updateAll')
  }
  return ops as FirestoreOps
}

/** Operations made on their first call: the client, heavy to load, is made then. */
export function lazyOps (make: () => FirestoreOps): FirestoreOps {
  let ops: FirestoreOps | undefined
  return forwardingOps((op) => async (...args) => await ((ops ??= make())[op] as (...args: unknown[]) => Promise<unknown>)(...args))
}

/** A client's operations, or operations as they are (the app's thread-backed ones). */
export function opsOf (db: Firestore | FirestoreOps): FirestoreOps {
  return 'collection' in db ? clientOps(db) : db
}
