import type { Datastore } from '@google-cloud/datastore'
import type { Firestore } from '@google-cloud/firestore'
import type { FastifyInstance } from 'fastify'
import type { BoundedCalls } from './bounded-calls.js'

/** How a feature keeps its data in each database the app may have. */
export interface RepositoryMakers<R> {
  firestore: (db: Firestore, calls: BoundedCalls) => R
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
