import { CircuitBreaker } from './breaker.js'
import { decode } from './codec.js'
import { storeKey } from './keys.js'
import type { CacheLogger } from './logger.js'
import { FAILED, Runner, type Failed } from './runner.js'
import { Stats } from './stats.js'
import type { CacheStore, StoredEntry } from './stores/store.js'

export interface Found {
  value: unknown
  casToken: string
}

/** What every namespace view of one store shares: the store, its runner, its stats. */
export class CacheCore {
  readonly runner: Runner<CacheStore>
  readonly stats: Stats

  constructor (readonly store: CacheStore, replica: CacheStore | undefined, breaker: CircuitBreaker, readonly log: CacheLogger, statsFlushMs: number, namespace: string) {
    this.runner = new Runner<CacheStore>(
      { store, breaker },
      replica === undefined ? undefined : { store: replica, breaker: new CircuitBreaker() },
      log,
      (ns) => { this.stats.count(ns).errors++ })
    this.stats = new Stats(this.runner, log, statsFlushMs, namespace)
  }

  /**
   * Reads and decodes the keys of a namespace. Only the first `counted` of them are hits or
   * misses in the stats: the rest are bookkeeping read along (a generation, a lock).
   */
  async read (keys: readonly string[], namespace: string, counted: number, from: 'primary' | 'replica'): Promise<Array<Found | undefined | Failed>> {
    const storeKeys = keys.map((key) => storeKey(key, namespace))
    const entries = await this.runner.read(namespace, (store) => store.get(storeKeys), from)
    if (entries === FAILED) return keys.map(() => FAILED)
    const counters = this.stats.count(namespace)
    return entries.map((entry: StoredEntry | undefined, i) => {
      const counts = i < counted
      if (entry !== undefined) {
        try {
          const value = decode(entry.value)
          if (counts) {
            counters.hits++
            counters.byteHits += Buffer.byteLength(entry.value)
          }
          return { value, casToken: entry.casToken }
        } catch (err) {
          counters.errors++
          this.log.warn({ err, namespace, key: keys[i] }, 'cache value could not be decoded; treated as a miss')
        }
      }
      if (counts) counters.misses++
      return undefined
    })
  }
}
