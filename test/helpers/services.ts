import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { Datastore } from '@google-cloud/datastore'
import type { Firestore } from '@google-cloud/firestore'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { closeDatastore, createDatastore, type DatastoreConnection } from '../../src/plugins/datastore.js'
import { createFirestore } from '../../src/plugins/firestore.js'
import type { FirestoreOps } from '../../src/plugins/firestore-ops.js'
import { threadOps } from '../../src/plugins/firestore-worker.js'
import { createRedisClient } from '@visitme/memcache'
import { hostPort } from './ports.js'

/** A unique, readable name: tests share one Redis and one emulator, never a key or a collection. */
export function uniqueName (prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

function fromTestCommand (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run the tests with \`npm test\`, which provides Redis and the Firestore emulators`)
  }
  return value
}

/** The Redis the test command provides (its own, or the one REDISHOST names). */
export function redisTarget (): { host: string, port: number } {
  return hostPort(fromTestCommand('TEST_REDIS'))
}

/** The Firestore emulator the test command provides. */
export function emulatorHost (): string {
  return fromTestCommand('TEST_FIRESTORE_EMULATOR')
}

/** The Firestore emulator in Datastore mode the test command provides. */
export function datastoreEmulatorHost (): string {
  return fromTestCommand('TEST_DATASTORE_EMULATOR')
}

/** A Redis client with the service's own fail-fast settings, quit when the test ends. */
export function testRedis (t: Test, target = redisTarget(), commandTimeoutMs = 1000): Redis {
  const client = createRedisClient({ ...target, commandTimeoutMs, connectTimeoutMs: 1000 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return client
}

export async function redisReady (client: Redis): Promise<Redis> {
  if (client.status !== 'ready') await once(client, 'ready')
  return client
}

/** The app's thread-backed Firestore operations (src/plugins/firestore-worker.ts), its thread ended when the test ends. */
export function testFirestoreThread (t: Test, host = emulatorHost()): FirestoreOps {
  const thread = threadOps({ databaseId: '(default)', emulatorHost: host })
  t.teardown(async () => { await thread.close() })
  return thread.ops
}

export async function testFirestore (t: Test, host = emulatorHost()): Promise<Firestore> {
  const db = await createFirestore({ databaseId: '(default)', emulatorHost: host })
  t.teardown(async () => { await db.terminate() })
  return db
}

/**
 * Where one test's entities live: a namespace of its own in the Datastore-mode emulator, since
 * kinds are fixed (NDB's) and a query of a kind sees its whole namespace.
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
