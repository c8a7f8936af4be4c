import type { Datastore } from '@google-cloud/datastore'
import type { Firestore } from '@google-cloud/firestore'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { RedisClient } from '@visitme/memcache'
import type { IapKeySource } from './admin/auth.js'
import type { Config } from './config.js'
import type { GreetingsRepository } from './guestbook/repository.js'
import { describeClient } from '@visitme/memcache'
import { describeDatastore } from './plugins/datastore.js'
import type { TasksRepository } from './tasks/repository.js'
import type { Telemetry } from './telemetry/index.js'
import type { VisitsRepository } from './visits/repository.js'

/** What a caller (a test, another app) may hand in instead of what the config describes. */
export interface AppDependencies {
  /** The app's logger (app.log); by default a pino logger at the configured level, in Cloud Logging's JSON. */
  loggerInstance?: FastifyBaseLogger
  /** An existing client; the caller closes it. */
  redis?: RedisClient
  /** A client of a read replica of `redis`; the caller closes it. */
  redisReader?: Redis
  /** An existing client; the caller closes it. */
  firestore?: Firestore
  /** An existing client of a Datastore-mode database; the caller closes it. */
  datastore?: Datastore
  repository?: VisitsRepository
  greetings?: GreetingsRepository
  tasks?: TasksRepository
  /** IAP's public keys for the cache console, instead of Google's (a test's own key pair). */
  iapKeys?: IapKeySource
  /** OpenTelemetry, started by the caller (startTelemetry) before the app is built; flushed when the app closes. */
  telemetry?: Telemetry
}

/** What the app will use, from the configuration and what the caller hands in, before anything connects. */
export function describeDependencies (config: Config, deps: AppDependencies): { cache: string, visits: string, telemetry: string } {
  const { cache, visits } = describeStores(config, deps)
  const signals = [config.telemetry?.traces === true ? 'traces' : '', config.telemetry?.metrics === true ? 'metrics' : ''].filter((s) => s !== '')
  return {
    cache,
    visits,
    telemetry: deps.telemetry === undefined || signals.length === 0 ? 'off (no OTEL_EXPORTER_OTLP_ENDPOINT)' : `${signals.join(' and ')} to OTLP`
  }
}

function describeStores (config: Config, deps: AppDependencies): { cache: string, visits: string } {
  const redis = config.redis
  const cache = deps.redis !== undefined
    ? `redis at ${describeClient(deps.redis)}${deps.redisReader === undefined ? '' : `, reads that tolerate lag at ${describeClient(deps.redisReader)}`}`
    : redis !== undefined
      ? `redis at ${redis.cluster === true ? 'cluster at ' : ''}${redis.host}:${redis.port}` +
        `${redis.read === undefined ? '' : `, reads that tolerate lag at ${redis.read.host}:${redis.read.port}`}`
      : 'in-process memory (no REDISHOST)'
  const kind = deps.repository?.kind ??
    (config.firestore !== undefined || deps.firestore !== undefined ? 'firestore' : config.datastore !== undefined || deps.datastore !== undefined ? 'datastore' : 'memory')
  if (kind === 'datastore') return { cache, visits: `datastore mode, ${describeDatastore(config.datastore ?? {})}, kinds Visit, Greeting and Task` }
  const visits = kind === 'firestore'
    ? `firestore${config.firestore?.emulatorHost === undefined
      ? config.firestore === undefined ? '' : ` (project ${config.firestore.projectId ?? 'of the credentials'}, database ${config.firestore.databaseId})`
      : ` emulator at ${config.firestore.emulatorHost}`}, collection ${config.visits.collection}`
    : 'in-memory, lost on restart (no Firestore configured)'
  return { cache, visits }
}
