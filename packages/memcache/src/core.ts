import { CircuitBreaker } from './breaker.js'
import { decode } from './codec.js'
import { storeKey } from './keys.js'
import type { CacheLogger } from './logger.js'
import { FAILED, Runner, type Failed } from './runner.js'
import { Stats, type CacheCounters } from './stats.js'
import type { CacheStore, StoredEntry } from './stores/store.js'

/**
 * A hook that sees one in about `every` keys the cache reads or writes, for a view of the busiest
 * keys. Each call is one key of one operation; the hook must return at once (count, not write).
 */
export interface KeySampler {
  every: number
  record: (namespace: string, key: string) => void
}

/** What readOne() answers for a key that holds no value (or none that can be decoded). */
export const MISS = Symbol('miss')

export interface Found {
  value: unknown
  /** Read only when asked for. */
  casToken?: string
}

/** What every namespace view of one store shares: the store, its runner, its stats. */
export class CacheCore {
  readonly runner: Runner<CacheStore>
  readonly stats: Stats
  readonly #sampler: KeySampler | undefined
  /** Operations until the next sampled one: a random gap averaging `every`, so no access pattern hides from it. */
  #untilSample = 0

  constructor (readonly store: CacheStore, replica: CacheStore | undefined, breaker: CircuitBreaker, readonly log: CacheLogger, statsFlushMs: number, namespace: string, sampler?: KeySampler) {
    if (sampler !== undefined && !(Number.isInteger(sampler.every) && sampler.every >= 1)) throw new RangeError(`sampleKeys.every must be an integer >= 1, got ${sampler.every}`)
    this.#sampler = sampler
    this.#untilSample = sampler === undefined ? 0 : this.#gap()
    this.runner = new Runner<CacheStore>(
      { store, breaker },
      replica === undefined ? undefined : { store: replica, breaker: new CircuitBreaker() },
      log,
      (ns) => { this.stats.count(ns).errors++ })
    this.stats = new Stats(this.runner, log, statsFlushMs, namespace)
  }

  /** Hands one key in about `every` to the sampler; without one, a single comparison. */
  sample (namespace: string, key: string): void {
    if (this.#sampler === undefined || --this.#untilSample > 0) return
    this.#untilSample = this.#gap()
    try {
      this.#sampler.record(namespace, key)
    } catch (err) {
      // A view of the traffic must never fail the traffic.
      this.log.warn({ err, namespace }, 'cache key sampler failed')
    }
  }

  #gap (): number {
    return 1 + Math.floor(Math.random() * (2 * this.#sampler!.every - 1))
  }

  /**
   * Reads and decodes the keys of a namespace. Only the first `counted` of them are hits or
   * misses in the stats: the rest are bookkeeping read along (a generation, a lock).
   */
  async read (keys: readonly string[], namespace: string, counted: number, from: 'primary' | 'replica', tokens = false): Promise<Array<Found | undefined | Failed>> {
    const storeKeys = keys.map((key) => storeKey(key, namespace))
    for (let i = 0; i < counted; i++) this.sample(namespace, keys[i]!)
    const entries = await this.runner.read(namespace, (store): Promise<Array<StoredEntry | string | undefined>> =>
      tokens ? store.gets(storeKeys) : store.get(storeKeys), from)
    if (entries === FAILED) return keys.map(() => FAILED)
    const counters = this.stats.count(namespace)
    return entries.map((entry, i) => {
      if (entry === undefined) {
        if (i < counted) counters.misses++
        return undefined
      }
      const value = this.#decode(typeof entry === 'string' ? entry : entry.value, keys[i]!, namespace, counters, i < counted)
      return value === MISS ? undefined : { value, casToken: typeof entry === 'string' ? undefined : entry.casToken }
    })
  }

  /**
   * read() of one counted key, the path of every get(): no arrays of its own, and no promise
   * besides the store's; in the runner's one step, `answer` turns the value, MISS or FAILED into
   * what the caller returns.
   */
  readOne<R> (key: string, namespace: string, from: 'primary' | 'replica', answer: (found: unknown) => R): Promise<R> {
    let at: string
    try {
      at = storeKey(key, namespace)
    } catch (err) {
      return Promise.reject(err)
    }
    this.sample(namespace, key)
    return this.runner.readThen(namespace, (store) => store.getOne(at), from, (found) => {
      if (found === FAILED) return answer(FAILED)
      const counters = this.stats.count(namespace)
      if (found !== undefined && found !== null) return answer(this.#decode(found, key, namespace, counters, true))
      counters.misses++
      return answer(MISS)
    })
  }

  /** The value of a text read, counted; MISS (counted as an error and a miss) when it cannot be decoded. */
  #decode (text: string, key: string, namespace: string, counters: CacheCounters, counts: boolean): unknown {
    try {
      const value = decode(text)
      if (counts) {
        counters.hits++
        counters.byteHits += Buffer.byteLength(text)
      }
      return value
    } catch (err) {
      counters.errors++
      if (counts) counters.misses++
      this.log.warn({ err, namespace, key }, 'cache value could not be decoded; treated as a miss')
      return MISS
    }
  }
}
