import type { Datastore } from '@google-cloud/datastore'
import type { Test } from 'tap'
import { closeDatastore, createDatastore, type DatastoreConnection } from '../../src/plugins/datastore.js'
import { uniqueName } from './services.js'

/** The Firestore emulator in Datastore mode the test command provides. */
export function datastoreEmulatorHost (): string {
  const value = process.env.TEST_DATASTORE_EMULATOR
  if (value === undefined || value === '') {
    throw new Error('TEST_DATASTORE_EMULATOR is not set: run the tests with `npm test`, which provides the Datastore-mode emulator')
  }
  return value
}

/**
 * Where one test's entities live: a namespace of its own in the emulator, since kinds are
 * fixed (NDB's) and a query of a kind sees its whole namespace.
 */
export function testDatastoreConnection (): DatastoreConnection & { namespace: string, emulatorHost: string } {
  return { databaseId: '(default)', namespace: uniqueName('ns'), emulatorHost: datastoreEmulatorHost() }
}

/** A client of a namespace of its own, closed when the test ends. */
export async function testDatastore (t: Test, connection = testDatastoreConnection()): Promise<Datastore> {
  const client = await createDatastore(connection)
  t.teardown(async () => { await closeDatastore(client) })
  return client
}
