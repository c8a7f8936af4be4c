import { once } from 'node:events'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
  }
}

export interface RedisConnection {
  host: string
  port: number
  commandTimeoutMs: number
  connectTimeoutMs: number
}

export type RedisPluginOptions =
  | ({ client?: undefined } & RedisConnection)
  /** An existing client; closed with the app only when closeClient is true. */
  | { client: Redis, closeClient?: boolean }

/**
 * A client that fails fast instead of queueing: no offline queue, no retried
 * commands, a timeout on every command, and endless reconnects in the background.
 * ioredis' defaults would hold a request for over a minute while Redis is away.
 */
export function createRedisClient ({ host, port, commandTimeoutMs, connectTimeoutMs }: RedisConnection): Redis {
  return new Redis({
    host,
    port,
    // RESP2 works with every Memorystore version; RESP3 needs Redis 6 or later.
    protocol: 2,
    connectionName: 'visitme',
    commandTimeout: commandTimeoutMs,
    // A socket that answers nothing for this long after a command is dead (a blackholed
    // connection after a failover or a VPC blip): drop it and reconnect.
    socketTimeout: Math.max(4 * commandTimeoutMs, 2000),
    connectTimeout: connectTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    keepAlive: 30_000
  })
}

/** Logs the client's connection state once per change, never once per failed command. */
function watch (client: Redis, log: FastifyBaseLogger, where: string): { closing: () => void } {
  let state: 'up' | 'down' | 'new' | 'closing' = 'new'
  client.on('ready', () => {
    if (state === 'closing') return
    log.info({ redis: where }, state === 'new' ? 'redis connected' : 'redis reconnected')
    state = 'up'
  })
  const down = (err?: Error) => {
    if (state === 'down' || state === 'closing') return
    log.warn({ redis: where, err }, 'redis unreachable; requests are served without the cache until it is back')
    state = 'down'
  }
  client.on('error', down)
  client.on('close', () => { if (state === 'up') down() })
  // Our own quit is no outage.
  return { closing: () => { state = 'closing' } }
}

async function quit (client: Redis): Promise<void> {
  if (client.status === 'end') return
  try {
    await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
  } catch {
    // quit fails when the connection is already gone; disconnect below covers it.
  }
  client.disconnect()
}

export default fp<RedisPluginOptions>(async function redisPlugin (app, options) {
  const client = options.client ?? createRedisClient(options)
  const where = `${client.options.host ?? '?'}:${client.options.port ?? '?'}`
  const watcher = watch(client, app.log, where)
  app.decorate('redis', client)
  const owned = options.client === undefined || options.closeClient === true
  if (owned) {
    app.addHook('onClose', async () => {
      watcher.closing()
      await quit(client)
    })
  }

  // Give the first requests a warm connection, but never hold start-up hostage to the cache.
  if (client.status !== 'ready' && options.client === undefined) {
    await once(client, 'ready', { signal: AbortSignal.timeout(options.connectTimeoutMs) }).catch(() => {})
  }
}, { name: 'redis', fastify: '5.x' })
