import { CircuitBreaker } from './breaker.js'
import { decode, encode } from './codec.js'
import type { Store } from './stores/store.js'
import { ttlSeconds } from './ttl.js'

/** The pino-compatible subset the cache logs through. */
export interface CacheLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
  debug (obj: object, msg: string): void
}

export type Lookup<T> =
  | { status: 'hit', value: T }
  | { status: 'miss' }
  /** The store could not answer (down, timed out, circuit open): a miss the caller may treat differently. */
  | { status: 'unavailable' }

export interface CacheOptions {
  store: Store
  namespace?: string
  logger?: CacheLogger
  breaker?: CircuitBreaker
}

export interface WriteOptions {
  /** Seconds, with memcache's rules: 0 = no expiry, up to 30 days relative, larger an absolute Unix time. */
  ttl?: number
}

export interface CacheCounters {
  hits: number
  misses: number
  errors: number
}

const silent: CacheLogger = { info () {}, warn () {}, debug () {} }
const FAILED = Symbol('failed')

/**
 * The fail-open facade over a store: every store error or timeout becomes a miss
 * or a no-op here, in one place, and trips a circuit breaker shared by every
 * namespace on the same store.
 */
export class Cache {
  readonly namespace: string
  readonly store: Store
  readonly counters: CacheCounters = { hits: 0, misses: 0, errors: 0 }
  readonly #breaker: CircuitBreaker
  readonly #log: CacheLogger

  constructor ({ store, namespace = 'cache', logger = silent, breaker = new CircuitBreaker() }: CacheOptions) {
    this.store = store
    this.namespace = namespace
    this.#log = logger
    this.#breaker = breaker
  }

  /** The same store and breaker under another namespace. */
  namespaced (namespace: string): Cache {
    return new Cache({ store: this.store, namespace, logger: this.#log, breaker: this.#breaker })
  }

  /** Whether the store is expected to answer now. */
  get available (): boolean {
    return this.store.connected && this.#breaker.state !== 'open'
  }

  async lookup<T> (key: string): Promise<Lookup<T>> {
    const raw = await this.#run((k) => this.store.get(k), key)
    if (raw === FAILED) return { status: 'unavailable' }
    if (raw !== undefined) {
      try {
        const value = decode<T>(raw)
        this.counters.hits++
        return { status: 'hit', value }
      } catch (err) {
        this.counters.errors++
        this.#log.warn({ err, namespace: this.namespace, key }, 'cache value could not be decoded; treated as a miss')
      }
    }
    this.counters.misses++
    return { status: 'miss' }
  }

  async get<T> (key: string): Promise<T | undefined> {
    const found = await this.lookup<T>(key)
    return found.status === 'hit' ? found.value : undefined
  }

  /** Stores the value; false when the store could not take it. */
  async set (key: string, value: unknown, { ttl = 0 }: WriteOptions = {}): Promise<boolean> {
    const seconds = ttlSeconds(ttl)
    if (seconds < 0) return (await this.delete(key)) !== 'failed'
    const text = encode(value)
    return (await this.#run((k) => this.store.set(k, text, seconds), key)) !== FAILED
  }

  async delete (key: string): Promise<'deleted' | 'missing' | 'failed'> {
    const deleted = await this.#run((k) => this.store.delete(k), key)
    if (deleted === FAILED) return 'failed'
    return deleted ? 'deleted' : 'missing'
  }

  async #run<R> (operation: (key: string) => Promise<R>, key: string): Promise<R | typeof FAILED> {
    // A disconnected client fails at once; the client's own state change is logged by its owner.
    if (!this.store.connected || !this.#breaker.allow()) return FAILED
    try {
      const result = await operation(`${this.namespace}:${key}`)
      const before = this.#breaker.state
      this.#breaker.success()
      if (before !== 'closed') this.#log.info({ namespace: this.namespace }, 'cache answering again; circuit closed')
      return result
    } catch (err) {
      this.counters.errors++
      const before = this.#breaker.state
      this.#breaker.failure()
      if (before === 'closed' && this.#breaker.state === 'open') {
        this.#log.warn({ err, namespace: this.namespace }, 'cache failing; circuit open, serving without it')
      } else {
        this.#log.debug({ err, namespace: this.namespace, key }, 'cache command failed')
      }
      return FAILED
    }
  }
}

export function createCache (options: CacheOptions): Cache {
  return new Cache(options)
}
