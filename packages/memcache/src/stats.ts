import { namespacePrefix, valuePrefixes } from './keys.js'
import type { CacheLogger } from './logger.js'
import { FAILED, type Runner } from './runner.js'
import type { CacheStore } from './stores/store.js'

export interface CacheCounters {
  hits: number
  misses: number
  byteHits: number
  errors: number
}

/** memcache's get_stats(), plus errors. Counters add up every process sharing the store. */
export interface CacheStats extends CacheCounters {
  /** Values in the namespace; counted, or a lower bound when statsComplete is false. */
  items: number
  /** Estimated from a sample of the items' sizes. */
  bytes: number
  /** Seconds since the least recently used item (of a sample) was read or written. */
  oldestItemAge: number
  statsComplete: boolean
}

const COUNTER_NAMES = ['hits', 'misses', 'byteHits', 'errors'] as const
/** report() counts at most this many keys of a namespace. */
const CENSUS_LIMIT = 100_000

const zero = (): CacheCounters => ({ hits: 0, misses: 0, byteHits: 0, errors: 0 })

function statsKey (namespace: string): string {
  return `${namespacePrefix(namespace)}:stats`
}

/**
 * Hits, misses and errors per namespace: counted in this process at no cost to the call that
 * counts, added to the store's shared counters in one batch every `flushMs`, and reported with
 * a census of what the namespace holds.
 */
export class Stats {
  /** This process's counts per namespace, and the part of them already added to the store's. */
  readonly #counters = new Map<string, CacheCounters>()
  readonly #flushed = new Map<string, CacheCounters>()
  #timer?: NodeJS.Timeout
  /** When this process last logged its counters. */
  #loggedAt = Date.now()

  constructor (readonly runner: Runner<CacheStore>, readonly log: CacheLogger, readonly flushMs: number, readonly namespace: string) {}

  /** The namespaces this process has counted reads in. */
  namespaces (): string[] {
    return [...this.#counters.keys()]
  }

  /** This process's counters of a namespace, to count into. */
  count (namespace: string): CacheCounters {
    let counters = this.#counters.get(namespace)
    if (counters === undefined) {
      counters = zero()
      this.#counters.set(namespace, counters)
    }
    // Counting schedules a flush; the request that counts never waits for it.
    this.#timer ??= setTimeout(() => { this.flush().catch(() => {}) }, this.flushMs).unref()
    return counters
  }

  /** Adds this process's new counts to the shared ones, in one round trip; kept for later when the store fails. */
  async flush (): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const batch = new Map<string, Record<string, number>>()
    const sent = new Map<CacheCounters, Record<string, number>>()
    for (const [namespace, counters] of this.#counters) {
      let flushed = this.#flushed.get(namespace)
      if (flushed === undefined) {
        flushed = zero()
        this.#flushed.set(namespace, flushed)
      }
      const deltas = Object.fromEntries(COUNTER_NAMES.map((name) => [name, counters[name] - flushed[name]]))
      if (Object.values(deltas).every((delta) => delta === 0)) continue
      batch.set(statsKey(namespace), deltas)
      // Counted as flushed before the round trip, so a concurrent flush cannot send the same counts again.
      for (const name of COUNTER_NAMES) flushed[name] += deltas[name]!
      sent.set(flushed, deltas)
    }
    if (batch.size === 0) return
    const done = await this.runner.run(this.namespace, async (store) => { await store.addCounters(batch) })
    if (done === FAILED) {
      for (const [flushed, deltas] of sent) for (const name of COUNTER_NAMES) flushed[name] -= deltas[name]!
      return
    }
    // This process's totals per namespace, once a minute at most, for log-based metrics.
    if (Date.now() - this.#loggedAt >= 60_000) {
      this.#loggedAt = Date.now()
      this.log.info({ cacheCounters: Object.fromEntries(this.#counters) }, 'cache counters')
    }
  }

  /**
   * memcache's stats for a namespace, across every process sharing the store. Hits and
   * misses of other processes may lag by their flush interval. Items are counted (up to
   * 100,000 keys) unless `census` is false; bytes and the oldest item's age come from a sample of 64 items.
   */
  async report (namespace: string, census: boolean, from: 'primary' | 'replica'): Promise<CacheStats> {
    await this.flush()
    const [key, prefixes] = [statsKey(namespace), valuePrefixes(namespace)]
    const shared = await this.runner.read(namespace, (store) => store.readCounters(key), from)
    // Counting items scans the keyspace: a page that shows only hits and misses skips it.
    const found = census
      ? await this.runner.read(namespace, (store) => store.census(prefixes, CENSUS_LIMIT), from)
      : { items: 0, bytes: 0, oldestItemAge: 0, complete: false }
    const counts: Partial<CacheCounters> = shared === FAILED ? this.count(namespace) : shared
    return {
      hits: counts.hits ?? 0,
      misses: counts.misses ?? 0,
      byteHits: counts.byteHits ?? 0,
      errors: counts.errors ?? 0,
      ...(found === FAILED
        ? { items: 0, bytes: 0, oldestItemAge: 0, statsComplete: false }
        : { items: found.items, bytes: found.bytes, oldestItemAge: found.oldestItemAge, statsComplete: found.complete })
    }
  }
}
