import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Type, type Static } from '@sinclair/typebox'
import type { RedisConnection as ClientConnection } from '@visitme/memcache'
import type { DrainOptions } from './plugins/drain.js'

const Port = (fallback: number) => Type.Integer({ minimum: 1, maximum: 65535, default: fallback })
const Millis = (fallback: number, maximum: number) => Type.Integer({ minimum: 1, maximum, default: fallback })
const OneOf = <const T extends string>(values: readonly T[], fallback: NoInfer<T>) =>
  Type.Unsafe<T>({ type: 'string', enum: values, default: fallback })

const OtlpEndpoint = () => Type.String({ pattern: '^https?://[^\\s/]+(/\\S*)?$', description: 'an http:// or https:// URL' })
const OtlpProtocol = () => Type.Unsafe<'http/protobuf' | 'http/json' | 'grpc'>({ type: 'string', enum: ['http/protobuf', 'http/json', 'grpc'] })

// The one description of the environment: the Config type is derived from it.
const EnvSchema = Type.Object({
  PORT: Port(8080),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  LOG_LEVEL: OneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  REDISHOST: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.:\\-]+$', description: 'a host name or IP address' })),
  REDISPORT: Port(6379),
  REDIS_COMMAND_TIMEOUT_MS: Millis(500, 60_000),
  REDIS_CONNECT_TIMEOUT_MS: Millis(2000, 60_000),
  REDIS_AUTH: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_TLS_CA_FILE: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_CLUSTER: Type.Boolean({ default: false }),
  REDIS_READ_HOST: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.:\\-]+$', description: 'a host name or IP address' })),
  REDIS_READ_PORT: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  RATE_LIMIT_WRITES: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 60 }),
  CACHE_NAMESPACE: Type.String({ pattern: '^[A-Za-z0-9._\\-]{1,64}$', default: 'visitme', description: 'letters, digits, ., _ and - (at most 64)' }),
  FIRESTORE_EMULATOR_HOST: Type.Optional(Type.String({ pattern: '^[^\\s/]+:[0-9]{1,5}$', description: 'host:port, e.g. 127.0.0.1:8681' })),
  GOOGLE_CLOUD_PROJECT: Type.Optional(Type.String({ pattern: '^[a-z0-9.:\\-]+$', description: 'a Google Cloud project ID' })),
  FIRESTORE_DATABASE: Type.String({ minLength: 1, default: '(default)' }),
  FIRESTORE_TIMEOUT_MS: Millis(5000, 60_000),
  VISITS_STORE: OneOf(['auto', 'firestore', 'datastore', 'memory'], 'auto'),
  DATASTORE_EMULATOR_HOST: Type.Optional(Type.String({ pattern: '^[^\\s/]+:[0-9]{1,5}$', description: 'host:port, e.g. 127.0.0.1:8682' })),
  DATASTORE_DATABASE: Type.String({ pattern: '^(\\(default\\)|[a-z][a-z0-9-]{2,62})$', default: '(default)', description: '(default) or a database ID (lower-case letters, digits and -)' }),
  DATASTORE_NAMESPACE: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._\\-]{1,100}$', description: 'a namespace of letters, digits, ., _ and - (at most 100)' })),
  DATASTORE_TIMEOUT_MS: Millis(5000, 60_000),
  VISITS_COLLECTION: Type.String({ pattern: '^[A-Za-z0-9_\\-]{1,100}$', default: 'visits', description: 'a collection ID of letters, digits, _ and -' }),
  VISITS_LIMIT: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  VISITS_SHARDS: Type.Integer({ minimum: 1, maximum: 100, default: 1 }),
  VISITS_CACHE_TTL: Type.Integer({ minimum: 1, maximum: 30 * 24 * 3600, default: 3600 }),
  VISITOR_IP: OneOf(['truncated', 'full'], 'truncated'),
  TRUST_PROXY_HOPS: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
  SHUTDOWN_TIMEOUT_MS: Millis(8000, 9500),
  SESSION_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'at least 32 characters' })),
  // The cache console (/admin/): off unless one of them is set.
  ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 32, description: 'at least 32 characters (e.g. openssl rand -hex 32)' })),
  ADMIN_IAP_AUDIENCE: Type.Optional(Type.String({
    pattern: '^/projects/[0-9]+/(global/backendServices/[0-9]+|apps/[a-z][a-z0-9.:-]*|locations/[a-z0-9-]+/services/[a-z][a-z0-9-]*)$',
    description: 'IAP\'s audience: /projects/NUMBER/locations/REGION/services/SERVICE (Cloud Run\'s own IAP), ' +
      '/projects/NUMBER/global/backendServices/ID (a load balancer) or /projects/NUMBER/apps/PROJECT_ID (App Engine)'
  })),
  // OpenTelemetry: the SDK reads every OTEL_* variable itself; these are checked here, so a mistake stops start-up.
  OTEL_SDK_DISABLED: Type.Boolean({ default: false }),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(OtlpEndpoint()),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.Optional(OtlpEndpoint()),
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: Type.Optional(OtlpEndpoint()),
  OTEL_EXPORTER_OTLP_PROTOCOL: Type.Optional(OtlpProtocol()),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Type.Optional(OtlpProtocol()),
  OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Type.Optional(OtlpProtocol()),
  OTEL_SERVICE_NAME: Type.Optional(Type.String({ minLength: 1 })),
  // Set by Cloud Run: the service and its revision.
  K_SERVICE: Type.Optional(Type.String()),
  K_REVISION: Type.Optional(Type.String())
})

/** Boolean variables: true/false or 1/0, in any case. */
const BOOLEANS = new Set(Object.entries(EnvSchema.properties).filter(([, schema]) => schema.type === 'boolean').map(([name]) => name))

function normalizeBoolean (value: string): string {
  const lower = value.toLowerCase()
  // Anything else stays as written, so the error message quotes it.
  return lower === 'true' || lower === '1' ? 'true' : lower === 'false' || lower === '0' ? 'false' : value
}

/** A host variable given as host:port (one colon, digits after it): the port has a variable of its own. */
const HOST_WITH_PORT = /^[^:]+:(\d+)$/
const PORT_OF: Record<string, string> = { REDISHOST: 'REDISPORT', REDIS_READ_HOST: 'REDIS_READ_PORT' }

type Env = Static<typeof EnvSchema>

/** Every variable the service reads. */
export const variables = Object.keys(EnvSchema.properties)

/** The cache library's Redis connection, with both timeouts always set by the configuration. */
export type RedisConnection = Omit<ClientConnection, 'connectionName'> & Required<Pick<ClientConnection, 'commandTimeoutMs' | 'connectTimeoutMs'>>

export interface Config {
  port: number
  host: string
  logLevel: string
  /** Every cache entry of the app lives under it: deployments sharing one Redis stay apart. */
  cacheNamespace: string
  redis?: RedisConnection
  firestore?: { projectId?: string, databaseId: string, emulatorHost?: string, timeoutMs: number }
  /** An App Engine app's existing data in Firestore in Datastore mode (VISITS_STORE=datastore), instead of Firestore. */
  datastore?: { projectId?: string, databaseId: string, namespace?: string, emulatorHost?: string, timeoutMs: number }
  /** shards: how many write ranges the visits are spread over (src/visits/shards.ts); 1 is the App Engine sample's layout. */
  visits: { collection: string, limit: number, shards: number, cacheTtlSeconds: number, ipMode: 'truncated' | 'full' }
  trustProxyHops: number
  /** Writes (visits stored, forms posted) one client IP may make per minute; 0: unlimited. */
  rateLimitWrites: number
  shutdownTimeoutMs: number
  /** How shutdown treats connections (src/plugins/drain.ts); unset: no accept window, as for apps a test builds. */
  drain?: DrainOptions
  /** Signs cookies (CSRF, sessions); undefined: a random one per process. */
  sessionSecret?: string
  /** The cache console under /admin/; undefined: off, every /admin/ URL is a 404. */
  admin?: AdminConfig
  projectId?: string
  onCloudRun: boolean
  /** Who writes the logs, for Cloud Error Reporting: the Cloud Run service and revision. */
  service: { name: string, version?: string }
  /** OpenTelemetry export (src/telemetry/), on when an OTLP endpoint is set; undefined: off, and nothing of it loaded. */
  telemetry?: TelemetryConfig
}

export interface TelemetryConfig {
  /** Which signals have an endpoint: a signal without one is not exported (rather than sent to localhost). */
  traces: boolean
  metrics: boolean
  /** service.name and service.version of what is exported. */
  serviceName: string
  serviceVersion?: string
}

/**
 * Shutdown of the server process (src/plugins/drain.ts): the port accepts for half a second more,
 * so the connections the kernel had already accepted are served rather than reset; a connection
 * that has sent nothing a second after the port closed is not waited for.
 */
export const DRAIN: DrainOptions = { acceptMs: 500, firstRequestMs: 1000 }

/** Who may use the cache console: a token from the environment, IAP's signed header, or both. */
export interface AdminConfig {
  token?: string
  /** The audience IAP signs its assertions for. */
  iapAudience?: string
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

function describe (error: { instancePath: string, keyword: string, message?: string, params: Record<string, unknown> }, raw: Record<string, string | undefined>): string {
  const name = error.instancePath.replace(/^\//, '') || String(error.params.missingProperty ?? 'environment')
  const value = raw[name]
  const schema = (EnvSchema.properties as Record<string, { description?: string }>)[name]
  const reason = BOOLEANS.has(name) && error.keyword === 'type'
    ? 'must be true or false (or 1 or 0)'
    : Array.isArray(error.params.allowedValues)
      ? `must be one of ${error.params.allowedValues.join(', ')}`
      : error.params.pattern !== undefined && schema?.description !== undefined
        ? `must be ${schema.description}`
        : error.params.limit !== undefined && schema?.description !== undefined && error.keyword === 'minLength'
          ? `must be ${schema.description}`
          : error.message ?? 'bad value'
  // A secret is never repeated into the logs, even a wrong one.
  const shown = /_(SECRET|AUTH|TOKEN)$/.test(name) ? ` (${value?.length ?? 0} characters)` : `=${JSON.stringify(value)}`
  return `${name}${shown} is invalid: ${reason}`
}

type PropertySchema = { type?: unknown, default?: unknown, minimum?: number, maximum?: number, minLength?: number, pattern?: string, enum?: readonly string[] }
const KNOWN_KEYWORDS = new Set(['type', 'default', 'minimum', 'maximum', 'minLength', 'pattern', 'enum', 'description'])
const INTEGER = /^-?\d{1,15}$/
const patterns = new Map<string, RegExp>()

/**
 * The environment as env-schema would return it, when every variable is plainly valid (a string,
 * digits for an integer, true or false for a boolean, within its bounds); undefined otherwise, and
 * env-schema then says what is wrong. It spares the start-up of every instance loading ajv and
 * compiling the schema (about 80 ms of CPU), for the keywords this schema uses; another keyword
 * goes to env-schema.
 */
export function plainlyValid (raw: Record<string, string>): Env | undefined {
  const out: Record<string, unknown> = {}
  for (const [name, property] of Object.entries(EnvSchema.properties as Record<string, PropertySchema>)) {
    if (Object.keys(property).some((keyword) => !KNOWN_KEYWORDS.has(keyword))) return undefined
    const text = raw[name]
    if (text === undefined) {
      if (property.default !== undefined) out[name] = property.default
      continue
    }
    let value: string | number | boolean = text
    if (property.type === 'integer') {
      if (!INTEGER.test(text)) return undefined
      value = Number(text)
      if ((property.minimum !== undefined && value < property.minimum) || (property.maximum !== undefined && value > property.maximum)) return undefined
    } else if (property.type === 'boolean') {
      if (text !== 'true' && text !== 'false') return undefined
      value = text === 'true'
    } else if (property.type === 'string') {
      if (property.minLength !== undefined && text.length < property.minLength) return undefined
      if (property.enum !== undefined && !property.enum.includes(text)) return undefined
      if (property.pattern !== undefined) {
        let pattern = patterns.get(property.pattern)
        if (pattern === undefined) patterns.set(property.pattern, pattern = new RegExp(property.pattern, 'u'))
        if (!pattern.test(text)) return undefined
      }
    } else {
      return undefined
    }
    out[name] = value
  }
  return out as Env
}

const requireModule = createRequire(import.meta.url)

/** env-schema's answer (ajv, coercing and applying defaults): loaded only when plainlyValid was not enough. */
export function validated (raw: Record<string, string>): Env {
  const { envSchema } = requireModule('env-schema') as typeof import('env-schema')
  return envSchema<Env>({ schema: EnvSchema, data: { ...raw }, env: false })
}

/**
 * Reads and validates the environment once. Empty variables count as unset, so a
 * blank line in an env file falls back to the default instead of failing.
 */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  const raw = Object.fromEntries(
    Object.keys(EnvSchema.properties)
      .filter((key) => env[key] !== undefined && env[key]?.trim() !== '')
      .map((key) => [key, BOOLEANS.has(key) ? normalizeBoolean(env[key]!.trim()) : env[key]!.trim()])
  )
  for (const [name, portName] of Object.entries(PORT_OF)) {
    const port = raw[name] === undefined ? undefined : HOST_WITH_PORT.exec(raw[name])?.[1]
    if (port !== undefined) {
      throw new ConfigError(`Invalid configuration: ${name}=${JSON.stringify(raw[name])} is invalid: it takes the host alone; ` +
        `the port goes in ${portName} (${portName}=${port})`)
    }
  }
  let parsed: Env
  try {
    parsed = plainlyValid(raw) ?? validated(raw)
  } catch (err) {
    const errors = (err as { errors?: Parameters<typeof describe>[0][] }).errors ?? []
    // anyOf/union errors repeat per branch: keep one message per variable.
    const messages = [...new Map(errors.map((e) => [e.instancePath, describe(e, raw)])).values()]
    throw new ConfigError(`Invalid configuration: ${messages.join('; ') || (err as Error).message}`)
  }

  const datastore = parsed.VISITS_STORE === 'datastore'
  if (!datastore) {
    // Meant for a Datastore-mode database: ignoring it would serve other data than the one named.
    const stray = (['DATASTORE_EMULATOR_HOST', 'DATASTORE_NAMESPACE'] as const).find((name) => parsed[name] !== undefined) ??
      (raw.DATASTORE_DATABASE === undefined ? undefined : 'DATASTORE_DATABASE')
    if (stray !== undefined) {
      throw new ConfigError(`Invalid configuration: ${stray} is set but VISITS_STORE=${parsed.VISITS_STORE}: ` +
        'set VISITS_STORE=datastore to serve the Datastore-mode database, or unset it')
    }
  }

  // A page waits at most for two Redis commands and its database budget; one taken on at the end of
  // shutdown's accept window must still fit the shutdown window.
  const budget = datastore ? 'DATASTORE_TIMEOUT_MS' : 'FIRESTORE_TIMEOUT_MS'
  const worstRequestMs = 2 * parsed.REDIS_COMMAND_TIMEOUT_MS + parsed[budget]
  if (worstRequestMs + DRAIN.acceptMs >= parsed.SHUTDOWN_TIMEOUT_MS) {
    throw new ConfigError(`Invalid configuration: ${budget} + 2 x REDIS_COMMAND_TIMEOUT_MS (${worstRequestMs} ms) ` +
      `must be below SHUTDOWN_TIMEOUT_MS (${parsed.SHUTDOWN_TIMEOUT_MS} ms) less the ${DRAIN.acceptMs} ms in which shutdown still ` +
      'accepts connections, so requests in flight finish before shutdown')
  }

  if (parsed.REDIS_TLS_CA_FILE !== undefined && !existsSync(parsed.REDIS_TLS_CA_FILE)) {
    throw new ConfigError(`Invalid configuration: REDIS_TLS_CA_FILE=${JSON.stringify(parsed.REDIS_TLS_CA_FILE)} is invalid: no such file`)
  }

  if (parsed.REDIS_CLUSTER && parsed.REDIS_READ_HOST !== undefined) {
    throw new ConfigError('Invalid configuration: REDIS_READ_HOST is for a standalone instance\'s read endpoint; ' +
      'with REDIS_CLUSTER=true the discovery endpoint serves every node: unset REDIS_READ_HOST')
  }
  if (parsed.REDISHOST === undefined && (parsed.REDIS_READ_HOST !== undefined || parsed.REDIS_CLUSTER)) {
    throw new ConfigError(`Invalid configuration: ${parsed.REDIS_CLUSTER ? 'REDIS_CLUSTER' : 'REDIS_READ_HOST'} needs REDISHOST`)
  }

  const onCloudRun = parsed.K_SERVICE !== undefined
  const wantsFirestore = parsed.VISITS_STORE === 'firestore' ||
    (parsed.VISITS_STORE === 'auto' &&
      (parsed.FIRESTORE_EMULATOR_HOST !== undefined || parsed.GOOGLE_CLOUD_PROJECT !== undefined || onCloudRun))

  return {
    port: parsed.PORT,
    host: parsed.HOST,
    logLevel: parsed.LOG_LEVEL,
    cacheNamespace: parsed.CACHE_NAMESPACE,
    redis: parsed.REDISHOST === undefined
      ? undefined
      : {
          host: parsed.REDISHOST,
          port: parsed.REDISPORT,
          commandTimeoutMs: parsed.REDIS_COMMAND_TIMEOUT_MS,
          connectTimeoutMs: parsed.REDIS_CONNECT_TIMEOUT_MS,
          password: parsed.REDIS_AUTH,
          tlsCaFile: parsed.REDIS_TLS_CA_FILE,
          cluster: parsed.REDIS_CLUSTER,
          read: parsed.REDIS_READ_HOST === undefined
            ? undefined
            : { host: parsed.REDIS_READ_HOST, port: parsed.REDIS_READ_PORT ?? parsed.REDISPORT }
        },
    firestore: wantsFirestore
      ? {
          projectId: parsed.GOOGLE_CLOUD_PROJECT,
          databaseId: parsed.FIRESTORE_DATABASE,
          emulatorHost: parsed.FIRESTORE_EMULATOR_HOST,
          timeoutMs: parsed.FIRESTORE_TIMEOUT_MS
        }
      : undefined,
    datastore: datastore
      ? {
          projectId: parsed.GOOGLE_CLOUD_PROJECT,
          databaseId: parsed.DATASTORE_DATABASE,
          namespace: parsed.DATASTORE_NAMESPACE,
          emulatorHost: parsed.DATASTORE_EMULATOR_HOST,
          timeoutMs: parsed.DATASTORE_TIMEOUT_MS
        }
      : undefined,
    visits: {
      collection: parsed.VISITS_COLLECTION,
      limit: parsed.VISITS_LIMIT,
      shards: parsed.VISITS_SHARDS,
      cacheTtlSeconds: parsed.VISITS_CACHE_TTL,
      ipMode: parsed.VISITOR_IP
    },
    // Cloud Run's front end appends the real client address to X-Forwarded-For:
    // trust exactly that one hop there, and no forwarded header anywhere else.
    trustProxyHops: parsed.TRUST_PROXY_HOPS ?? (onCloudRun ? 1 : 0),
    rateLimitWrites: parsed.RATE_LIMIT_WRITES,
    shutdownTimeoutMs: parsed.SHUTDOWN_TIMEOUT_MS,
    drain: DRAIN,
    sessionSecret: parsed.SESSION_SECRET,
    admin: parsed.ADMIN_TOKEN === undefined && parsed.ADMIN_IAP_AUDIENCE === undefined
      ? undefined
      : { token: parsed.ADMIN_TOKEN, iapAudience: parsed.ADMIN_IAP_AUDIENCE },
    projectId: parsed.GOOGLE_CLOUD_PROJECT,
    onCloudRun,
    service: { name: parsed.K_SERVICE ?? 'visitme', version: parsed.K_REVISION },
    telemetry: telemetryConfig(parsed)
  }
}

function telemetryConfig (parsed: Env): TelemetryConfig | undefined {
  if (parsed.OTEL_SDK_DISABLED) return undefined
  const traces = (parsed.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? parsed.OTEL_EXPORTER_OTLP_ENDPOINT) !== undefined
  const metrics = (parsed.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT ?? parsed.OTEL_EXPORTER_OTLP_ENDPOINT) !== undefined
  if (!traces && !metrics) return undefined
  return {
    traces,
    metrics,
    serviceName: parsed.OTEL_SERVICE_NAME ?? parsed.K_SERVICE ?? 'visitme',
    serviceVersion: parsed.K_REVISION
  }
}
