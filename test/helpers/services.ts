import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { Firestore } from '@google-cloud/firestore'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { createFirestore } from '../../src/plugins/firestore.js'
import { createRedisClient } from '../../src/plugins/redis.js'
import { hostPort } from './ports.js'

/** A unique, readable name: tests share one Redis and one emulator, never a key or a collection. */
export function uniqueName (prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

function fromTestCommand (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run the tests with \`npm test\`, which provides Redis and the Firestore emulator`)
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

export async function testFirestore (t: Test, host = emulatorHost()): Promise<Firestore> {
  const db = await createFirestore({ databaseId: '(default)', emulatorHost: host })
  t.teardown(async () => { await db.terminate() })
  return db
}
