import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import type { RedisConnection } from '../config.js'
import {
  clientReady, closeClient, createReadClient, createRedisClient, watchClient, type RedisClient, type SettingNames
} from '@visitme/memcache'

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
    /** A client of the read replica endpoint, when one is configured. */
    redisReader?: Redis
  }
}

export type RedisPluginOptions =
  | ({ client?: undefined } & RedisConnection)
  /** An existing client (and reader); closed with the app only when closeClient is true. */
  | { client: RedisClient, reader?: Redis, closeClient?: boolean }

/** The hints name the environment variables this app is configured by (see src/config.ts). */
const ENVIRONMENT: SettingNames = { host: 'REDISHOST', port: 'REDISPORT', password: 'REDIS_AUTH', tlsCaFile: 'REDIS_TLS_CA_FILE', cluster: 'REDIS_CLUSTER=true' }

export default fp<RedisPluginOptions>(async function redisPlugin (app, options) {
  let client: RedisClient
  let reader: Redis | undefined
  if (options.client === undefined) {
    const connection = { ...options, connectionName: 'visitme' }
    client = createRedisClient(connection)
    reader = connection.read === undefined ? undefined : createReadClient({ ...connection, read: connection.read })
  } else {
    client = options.client
    reader = options.reader
  }
  app.decorate<RedisClient>('redis', client)
  app.decorate<Redis | undefined>('redisReader', reader)
  const owned = options.client === undefined || options.closeClient === true
  for (const one of reader === undefined ? [client] : [client, reader]) {
    const watcher = watchClient(one, app.log, { names: ENVIRONMENT })
    if (owned) {
      app.addHook('onClose', async () => {
        watcher.closing()
        await closeClient(one)
      })
    }
  }

  // Give the first requests a warm connection, but never hold start-up hostage to the cache.
  if (options.client === undefined) await clientReady(client, AbortSignal.timeout(options.connectTimeoutMs)).catch(() => {})
}, { name: 'redis', fastify: '5.x' })
