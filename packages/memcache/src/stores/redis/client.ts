import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { CacheLogger } from '../../logger.js'

/** Where and how to reach Redis (or Valkey): an instance, a cluster's discovery endpoint, a read replica. */
export interface RedisConnection {
  host: string
  port: number
  /** Bound on every command, from sending it to its answer (default 500 ms). */
  commandTimeoutMs?: number
  /** Bound on making a connection (default 2000 ms). */
  connectTimeoutMs?: number
  /** The AUTH string (Memorystore: gcloud redis instances get-auth-string). */
  password?: string
  /** Path of the CA certificate that signed the server's: TLS, with the certificate verified. */
  tlsCaFile?: string
  /** host:port is a cluster's discovery endpoint (Memorystore for Redis Cluster, Valkey cluster mode). */
  cluster?: boolean
  /** A read replica endpoint, for the reads that tolerate replication lag. */
  read?: { host: string, port: number }
  /** The name the connections show in CLIENT LIST; the replica's gets "-reader" after it. */
  connectionName?: string
}

/**
 * How hints name the settings to check: the connection's own options by default; an app
 * that takes them from its environment names its variables instead.
 */
export interface SettingNames {
  host: string
  port: string
  password: string
  tlsCaFile: string
  /** What turns cluster mode on. */
  cluster: string
}

const OPTION_NAMES: SettingNames = { host: 'host', port: 'port', password: 'password', tlsCaFile: 'tlsCaFile', cluster: 'cluster: true' }

const DEFAULT_COMMAND_TIMEOUT_MS = 500
const DEFAULT_CONNECT_TIMEOUT_MS = 2000

const retryStrategy = (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000)

/** Settings of every connection, to an instance or to a cluster's nodes. */
function connectionOptions ({
  commandTimeoutMs = DEFAULT_COMMAND_TIMEOUT_MS, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS, password, tlsCaFile, connectionName
}: RedisConnection) {
  return {
    password,
    // rejectUnauthorized stays on: a certificate the CA did not sign is refused.
    tls: tlsCaFile === undefined ? undefined : { ca: readFileSync(tlsCaFile), rejectUnauthorized: true },
    // RESP2 works with every Memorystore version; RESP3 needs Redis 6 or later.
    protocol: 2,
    connectionName,
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
/** A standalone instance (or its read replica), or a cluster from its discovery endpoint. */
export type RedisClient = Redis | Cluster

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
    connectionName: connection.connectionName === undefined ? undefined : `${connection.connectionName}-reader`,
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
    slotsRefreshTimeout: connection.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
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
export function redisHint (failure: (Error & { code?: string, lastNodeError?: Error }) | undefined, where: string, names: SettingNames = OPTION_NAMES): string {
  // A cluster client reports the last node's error inside its own.
  const err: (Error & { code?: string }) | undefined = failure?.lastNodeError ?? failure
  const message = `${failure?.message ?? ''} ${err === failure ? '' : err?.message ?? ''}`
  if (/cluster support disabled/i.test(message)) {
    return `${names.cluster} but the instance is not a cluster: turn cluster mode off, or point ${names.host} at the cluster's discovery endpoint`
  }
  if (/WRONGPASS|invalid password|invalid username-password/i.test(message)) {
    return `Redis refused the AUTH string: check ${names.password} (Memorystore: gcloud redis instances get-auth-string)`
  }
  if (/NOAUTH/.test(message)) return `Redis requires AUTH: set ${names.password} to the instance's AUTH string`
  if (err?.code !== undefined && TLS_TRUST.has(err.code)) {
    return `the Redis server certificate is not trusted: check ${names.tlsCaFile} holds the instance's server CA ` +
      '(gcloud redis instances describe INSTANCE --format="value(serverCaCerts[0].cert)")'
  }
  if (err?.code === 'ECONNREFUSED') {
    return `nothing listens at ${where}: check ${names.host} and ${names.port} (Memorystore: 6379, or 6378 with in-transit encryption)`
  }
  if (err?.code === 'ETIMEDOUT' || /timed? ?out/i.test(message)) {
    return `no answer from ${where}: check the VPC egress (a Serverless VPC Access connector in the service's region, ` +
      'or Direct VPC egress), the instance\'s network and the firewall'
  }
  if (err?.code === 'ECONNRESET' || err?.code === 'EPIPE') {
    return `the connection was reset: with in-transit encryption set ${names.tlsCaFile} and ${names.port}=6378; ` +
      'idle connections are also reset while Cloud Run throttles the CPU, and the client reconnects by itself'
  }
  return 'the client retries in the background'
}

/** A standalone client on a cluster node gets MOVED for most keys: say so once, at start-up. */
function warnIfCluster (client: Redis, log: CacheLogger, where: string, names: SettingNames): void {
  client.info('cluster').then((info) => {
    if (/cluster_enabled:1/.test(info)) {
      log.warn({ redis: where, hint: `set ${names.cluster}: ${names.host} is a node of a cluster (its discovery endpoint)` },
        'redis is a cluster but the client is not a cluster client; most cache calls will fail')
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

function warnIfEvictionUnsafe (client: RedisClient, log: CacheLogger, where: string): void {
  const servers = client instanceof Cluster ? client.nodes('master') : [client]
  Promise.all(servers.map(async (server) => await server.info('memory'))).then((infos) => {
    const hint = infos.map((info) => evictionHint(info, where)).find((found) => found !== undefined)
    if (hint !== undefined) log.warn({ redis: where, hint }, 'redis may refuse cache writes once full')
  }, () => {})
}

/**
 * Logs the client's connection state once per change, never once per failed command, each
 * outage with a hint; at the first connection, warns of a cluster behind a standalone client and
 * of an eviction policy that lets the instance fill up. `closing()` before a quit of your own.
 */
export function watchClient (client: RedisClient, log: CacheLogger, { names = OPTION_NAMES }: { names?: SettingNames } = {}): { closing: () => void } {
  const where = describeClient(client)
  let state: 'up' | 'down' | 'new' | 'closing' = 'new'
  client.on('ready', () => {
    if (state === 'closing') return
    log.info({ redis: where }, state === 'new' ? 'redis connected' : 'redis reconnected')
    if (state === 'new' && !(client instanceof Cluster)) warnIfCluster(client, log, where, names)
    if (state === 'new') warnIfEvictionUnsafe(client, log, where)
    state = 'up'
  })
  const down = (err?: Error) => {
    if (state === 'down' || state === 'closing') return
    log.warn({ redis: where, err, hint: redisHint(err, where, names) }, 'redis unreachable; requests are served without the cache until it is back')
    state = 'down'
  }
  client.on('error', down)
  client.on('close', () => { if (state === 'up') down() })
  return { closing: () => { state = 'closing' } }
}

/** Quits within a second, and disconnects whatever the quit left. */
export async function closeClient (client: RedisClient): Promise<void> {
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
