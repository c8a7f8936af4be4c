import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { RedisConnection } from '../config.js'
import type { RedisClient } from '../cache/stores/redis.js'

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

const retryStrategy = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000)

/** Settings of every connection, to an instance or to a cluster's nodes. */
function connectionOptions ({ commandTimeoutMs, connectTimeoutMs, password, tlsCaFile }: RedisConnection) {
  return {
    password,
    // rejectUnauthorized stays on: a certificate the CA did not sign is refused.
    tls: tlsCaFile === undefined ? undefined : { ca: readFileSync(tlsCaFile), rejectUnauthorized: true },
    // RESP2 works with every Memorystore version; RESP3 needs Redis 6 or later.
    protocol: 2,
    connectionName: 'visitme',
    commandTimeout: commandTimeoutMs,
    // A socket that answers nothing for this long after a command is dead (a blackholed
    // connection after a failover or a VPC blip): drop it and reconnect.
    socketTimeout: Math.max(4 * commandTimeoutMs, 2000),
    connectTimeout: connectTimeoutMs,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // After a failover a connection may still reach the demoted primary, which answers READONLY:
    // reconnect (to whatever the address serves now) instead of failing writes for good.
    reconnectOnError: (err) => err.message.startsWith('READONLY'),
    keepAlive: 30_000
  } satisfies RedisOptions
}

/**
 * A client that fails fast instead of queueing: no offline queue, no retried
 * commands, a timeout on every command, and endless reconnects in the background.
 * ioredis' defaults would hold a request for over a minute while Redis is away.
 * No auto-pipelining: it sends one batch at a time, so behind a slow batch a command
 * would wait out that batch's timeout before its own starts, doubling the bound.
 */
export function createRedisClient (connection: RedisConnection & { cluster?: false }): Redis
export function createRedisClient (connection: RedisConnection): RedisClient
export function createRedisClient (connection: RedisConnection): RedisClient {
  if (connection.cluster === true) return createClusterClient(connection)
  return new Redis({
    ...connectionOptions(connection),
    host: connection.host,
    port: connection.port,
    enableOfflineQueue: false,
    retryStrategy
  })
}

/** A client of the read replica endpoint: the same settings against another address. */
export function createReadClient (connection: RedisConnection & { read: { host: string, port: number } }): Redis {
  return new Redis({
    ...connectionOptions(connection),
    ...connection.read,
    connectionName: 'visitme-reader',
    enableOfflineQueue: false,
    retryStrategy
  })
}

/**
 * Memorystore for Redis Cluster or Valkey cluster mode: the discovery endpoint names the
 * nodes, and each key goes to the primary of its slot. A failover shows up as MOVED or a
 * closed connection; the client refreshes the slots and retries a few times, briefly.
 */
function createClusterClient (connection: RedisConnection): Cluster {
  const cluster = new Cluster([{ host: connection.host, port: connection.port }], {
    redisOptions: connectionOptions(connection),
    enableOfflineQueue: false,
    clusterRetryStrategy: retryStrategy,
    // Nodes that drop and come back without a slot change (a restart) are reconnected.
    clusterNodeRetryStrategy: retryStrategy,
    slotsRefreshTimeout: connection.connectTimeoutMs,
    // Redirections after a failover: enough to follow a new primary, few enough to stay within a page's budget.
    maxRedirections: 3,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100
  })
  discoveryEndpoints.set(cluster, `${connection.host}:${connection.port}`)
  return cluster
}

/**
 * Resolves when the client can take commands: ready, and for a cluster, connected to every primary.
 * ioredis connects to a cluster node on its first command and, without an offline queue, refuses
 * the commands that follow while that connection is made: a PING to each primary makes them first.
 */
export async function clientReady (client: RedisClient, signal?: AbortSignal): Promise<void> {
  if (client.status !== 'ready') await once(client, 'ready', { signal })
  if (client instanceof Cluster) await Promise.all(client.nodes('master').map(async (node) => await node.ping()))
}

const discoveryEndpoints = new WeakMap<Cluster, string>()

const TLS_TRUST = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID'])

/** What to check, for the mistakes Cloud Run + Memorystore set-ups make. */
function redisHint (failure: (Error & { code?: string, lastNodeError?: Error }) | undefined, where: string): string {
  // A cluster client reports the last node's error inside its own.
  const err: (Error & { code?: string }) | undefined = failure?.lastNodeError ?? failure
  const message = `${failure?.message ?? ''} ${err === failure ? '' : err?.message ?? ''}`
  if (/cluster support disabled/i.test(message)) {
    return 'REDIS_CLUSTER=true but the instance is not a cluster: unset REDIS_CLUSTER, or point REDISHOST at the cluster\'s discovery endpoint'
  }
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) {
    return 'Redis refused the AUTH string: check REDIS_AUTH (Memorystore: gcloud redis instances get-auth-string)'
  }
  if (/NOAUTH/.test(message)) return 'Redis requires AUTH: set REDIS_AUTH to the instance\'s AUTH string'
  if (err?.code !== undefined && TLS_TRUST.has(err.code)) {
    return 'the Redis server certificate is not trusted: check REDIS_TLS_CA_FILE holds the instance\'s server CA ' +
      '(gcloud redis instances describe INSTANCE --format="value(serverCaCerts[0].cert)")'
  }
  if (err?.code === 'ECONNREFUSED') {
    return `nothing listens at ${where}: check REDISHOST and REDISPORT (Memorystore: 6379, or 6378 with in-transit encryption)`
  }
  if (err?.code === 'ETIMEDOUT' || /timed? ?out/i.test(message)) {
    return `no answer from ${where}: check the VPC egress (a Serverless VPC Access connector in the service's region, ` +
      'or Direct VPC egress), the instance\'s network and the firewall'
  }
  if (err?.code === 'ECONNRESET' || err?.code === 'EPIPE') {
    return 'the connection was reset: with in-transit encryption set REDIS_TLS_CA_FILE and REDISPORT=6378; ' +
      'idle connections are also reset while Cloud Run throttles the CPU, and the client reconnects by itself'
  }
  return 'the client retries in the background'
}

/** A standalone client on a cluster node gets MOVED for most keys: say so once, at start-up. */
function warnIfCluster (client: Redis, log: FastifyBaseLogger, where: string): void {
  client.info('cluster').then((info) => {
    if (/cluster_enabled:1/.test(info)) {
      log.warn({ redis: where, hint: 'set REDIS_CLUSTER=true: REDISHOST is a node of a cluster (its discovery endpoint)' },
        'redis is a cluster but REDIS_CLUSTER is not set; most cache calls will fail')
    }
  }, () => {})
}

/**
 * Memorystore's default eviction policy, volatile-lru, evicts only keys with a TTL: a cache full of
 * entries without one (memcache's ttl 0, the stats counters) then refuses writes, where App Engine
 * evicted any entry. Memorystore refuses CONFIG, so the policy is read from INFO; a server without
 * a memory limit (maxmemory 0, a local Redis) never evicts and needs no warning.
 */
export function evictionHint (memoryInfo: string, where: string): string | undefined {
  const policy = /maxmemory_policy:(\S+)/.exec(memoryInfo)?.[1]
  const limit = Number(/^maxmemory:(\d+)/m.exec(memoryInfo)?.[1] ?? 0)
  if (policy === undefined || limit === 0 || policy.startsWith('allkeys-')) return undefined
  return `${where} evicts with maxmemory-policy ${policy}: entries without a TTL are never evicted, and a full instance refuses ` +
    'writes. Set an allkeys policy: gcloud redis instances update INSTANCE --region=REGION --update-redis-config maxmemory-policy=allkeys-lru'
}

function warnIfEvictionUnsafe (client: RedisClient, log: FastifyBaseLogger, where: string): void {
  const servers = client instanceof Cluster ? client.nodes('master') : [client]
  Promise.all(servers.map(async (server) => await server.info('memory'))).then((infos) => {
    const hint = infos.map((info) => evictionHint(info, where)).find((found) => found !== undefined)
    if (hint !== undefined) log.warn({ redis: where, hint }, 'redis may refuse cache writes once full')
  }, () => {})
}

/** Logs the client's connection state once per change, never once per failed command. */
function watch (client: RedisClient, log: FastifyBaseLogger, where: string): { closing: () => void } {
  let state: 'up' | 'down' | 'new' | 'closing' = 'new'
  client.on('ready', () => {
    if (state === 'closing') return
    log.info({ redis: where }, state === 'new' ? 'redis connected' : 'redis reconnected')
    if (state === 'new' && !(client instanceof Cluster)) warnIfCluster(client, log, where)
    if (state === 'new') warnIfEvictionUnsafe(client, log, where)
    state = 'up'
  })
  const down = (err?: Error) => {
    if (state === 'down' || state === 'closing') return
    log.warn({ redis: where, err, hint: redisHint(err, where) }, 'redis unreachable; requests are served without the cache until it is back')
    state = 'down'
  }
  client.on('error', down)
  client.on('close', () => { if (state === 'up') down() })
  // Our own quit is no outage.
  return { closing: () => { state = 'closing' } }
}

async function quit (client: RedisClient): Promise<void> {
  if (client.status === 'end') return
  try {
    await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
  } catch {
    // quit fails when the connection is already gone; disconnect below covers it.
  }
  client.disconnect()
}

/** host:port of a client, for logs: a cluster by its discovery endpoint. */
export function describeClient (client: RedisClient): string {
  if (client instanceof Cluster) return `cluster at ${discoveryEndpoints.get(client) ?? '?'}`
  return `${client.options.host ?? '?'}:${client.options.port ?? '?'}`
}

export default fp<RedisPluginOptions>(async function redisPlugin (app, options) {
  const client = options.client ?? createRedisClient(options)
  const reader = options.client === undefined
    ? options.read === undefined ? undefined : createReadClient({ ...options, read: options.read })
    : options.reader
  app.decorate<RedisClient>('redis', client)
  app.decorate<Redis | undefined>('redisReader', reader)
  const owned = options.client === undefined || options.closeClient === true
  for (const one of reader === undefined ? [client] : [client, reader]) {
    const watcher = watch(one, app.log, describeClient(one))
    if (owned) {
      app.addHook('onClose', async () => {
        watcher.closing()
        await quit(one)
      })
    }
  }

  // Give the first requests a warm connection, but never hold start-up hostage to the cache.
  if (options.client === undefined) await clientReady(client, AbortSignal.timeout(options.connectTimeoutMs)).catch(() => {})
}, { name: 'redis', fastify: '5.x' })
