import type { Cache, CacheCounters, KeySampler, RedisClient } from '@visitme/memcache'

/** A minute as its number since the epoch: the bucket every instance adds to. */
export const minuteOf = (ms: number): number => Math.floor(ms / 60_000)

/** The counters of one namespace in one minute. */
export type MinuteCounts = Pick<CacheCounters, 'hits' | 'misses' | 'errors'>
const COUNTER_NAMES = ['hits', 'misses', 'errors'] as const

/** A key seen by the sampler: its namespace, and the key (cut at MAX_SAMPLED_KEY characters). */
export interface SampledKey {
  namespace: string
  key: string
  /** The key was longer than what is kept of it. */
  cut: boolean
}

/** Characters of a sampled key kept: enough to find it again; a longer one is shown cut. */
export const MAX_SAMPLED_KEY = 1000

/**
 * Where the console keeps what every instance adds per minute: the cache counters of each
 * namespace, and the sampled keys. Shared by the instances on Redis; this process's own in memory.
 */
export interface MinuteStore {
  readonly shared: boolean
  addCounts (minute: number, counts: ReadonlyMap<string, MinuteCounts>): Promise<void>
  /** Adds sampled operations per key (keys as memberOf() writes them), and their total. */
  addKeys (minute: number, keys: ReadonlyMap<string, number>, total: number): Promise<void>
  /** Each minute's counts per namespace, in the order asked. */
  readCounts (minutes: readonly number[]): Promise<Array<Map<string, MinuteCounts>>>
  /** The sampled operations per key over the minutes, summed, and their total. */
  readKeys (minutes: readonly number[]): Promise<{ keys: Map<string, number>, total: number }>
}

/** A sampled key as one string (a sorted set's member). */
export function memberOf (namespace: string, key: string): string {
  const cut = key.length > MAX_SAMPLED_KEY
  return JSON.stringify([namespace, cut ? key.slice(0, MAX_SAMPLED_KEY) : key, cut ? 1 : 0])
}

export function keyOfMember (member: string): SampledKey | undefined {
  try {
    const [namespace, key, cut] = JSON.parse(member) as unknown[]
    return typeof namespace === 'string' && typeof key === 'string' ? { namespace, key, cut: cut === 1 } : undefined
  } catch {
    return undefined
  }
}

/** How long a minute's counts are kept: the chart's longest range. */
export const COUNTS_KEPT_MINUTES = 24 * 60
/** How long a minute's sampled keys are kept: the hot keys' window, and some. */
export const KEYS_KEPT_MINUTES = 15
/** Members a minute's sorted set keeps: the busiest; the tail adds nothing to a top list. */
const KEYS_PER_MINUTE = 2000

/**
 * The minutes in Redis: a hash of counters (`<namespace>\t<counter>` fields) and a sorted set of
 * sampled keys per minute, each with a TTL, under one hash tag so that a cluster keeps them in one
 * slot and a pipeline may carry them.
 */
export class RedisMinuteStore implements MinuteStore {
  readonly shared = true
  readonly #prefix: string

  constructor (readonly client: RedisClient, cacheNamespace: string) {
    this.#prefix = `{${cacheNamespace}/admin}`
  }

  async addCounts (minute: number, counts: ReadonlyMap<string, MinuteCounts>): Promise<void> {
    const key = `${this.#prefix}:counts:${minute}`
    const pipeline = this.client.pipeline()
    for (const [namespace, counters] of counts) {
      for (const name of COUNTER_NAMES) if (counters[name] !== 0) pipeline.hincrby(key, `${namespace}\t${name}`, counters[name])
    }
    pipeline.expire(key, (COUNTS_KEPT_MINUTES + 1) * 60)
    check(await pipeline.exec())
  }

  async addKeys (minute: number, keys: ReadonlyMap<string, number>, total: number): Promise<void> {
    const key = `${this.#prefix}:keys:${minute}`
    const pipeline = this.client.pipeline()
    for (const [member, count] of keys) pipeline.zincrby(key, count, member)
    // The total rides along as a member no sampled key can be (not JSON).
    pipeline.zincrby(key, total, TOTAL)
    pipeline.zremrangebyrank(key, 0, -(KEYS_PER_MINUTE + 1))
    pipeline.expire(key, (KEYS_KEPT_MINUTES + 1) * 60)
    check(await pipeline.exec())
  }

  async readCounts (minutes: readonly number[]): Promise<Array<Map<string, MinuteCounts>>> {
    const pipeline = this.client.pipeline()
    for (const minute of minutes) pipeline.hgetall(`${this.#prefix}:counts:${minute}`)
    return check(await pipeline.exec()).map((raw) => {
      const counts = new Map<string, MinuteCounts>()
      for (const [field, value] of Object.entries(raw as Record<string, string>)) {
        const tab = field.lastIndexOf('\t')
        const name = field.slice(tab + 1) as keyof MinuteCounts
        if (tab < 0 || !COUNTER_NAMES.includes(name)) continue
        const namespace = field.slice(0, tab)
        const counters = counts.get(namespace) ?? { hits: 0, misses: 0, errors: 0 }
        counters[name] += Number(value)
        counts.set(namespace, counters)
      }
      return counts
    })
  }

  async readKeys (minutes: readonly number[]): Promise<{ keys: Map<string, number>, total: number }> {
    const pipeline = this.client.pipeline()
    for (const minute of minutes) pipeline.zrange(`${this.#prefix}:keys:${minute}`, '0', '-1', 'WITHSCORES')
    const keys = new Map<string, number>()
    let total = 0
    for (const flat of check(await pipeline.exec()) as string[][]) {
      for (let i = 0; i < flat.length; i += 2) {
        const [member, score] = [flat[i]!, Number(flat[i + 1])]
        if (member === TOTAL) total += score
        else keys.set(member, (keys.get(member) ?? 0) + score)
      }
    }
    return { keys, total }
  }
}

const TOTAL = '*total'

/** A pipeline's results, or its first error. */
function check (results: Array<[Error | null, unknown]> | null): unknown[] {
  if (results === null) throw new Error('pipeline discarded')
  return results.map(([err, value]) => {
    if (err !== null) throw err
    return value
  })
}

/** The minutes in this process (the memory store's app: one instance, nothing to share). */
export class MemoryMinuteStore implements MinuteStore {
  readonly shared = false
  readonly #counts = new Map<number, Map<string, MinuteCounts>>()
  readonly #keys = new Map<number, { keys: Map<string, number>, total: number }>()

  async addCounts (minute: number, counts: ReadonlyMap<string, MinuteCounts>): Promise<void> {
    const bucket = this.#counts.get(minute) ?? new Map<string, MinuteCounts>()
    this.#counts.set(minute, bucket)
    for (const [namespace, added] of counts) {
      const counters = bucket.get(namespace) ?? { hits: 0, misses: 0, errors: 0 }
      for (const name of COUNTER_NAMES) counters[name] += added[name]
      bucket.set(namespace, counters)
    }
    prune(this.#counts, minute - COUNTS_KEPT_MINUTES)
  }

  async addKeys (minute: number, keys: ReadonlyMap<string, number>, total: number): Promise<void> {
    const bucket = this.#keys.get(minute) ?? { keys: new Map<string, number>(), total: 0 }
    this.#keys.set(minute, bucket)
    for (const [member, count] of keys) bucket.keys.set(member, (bucket.keys.get(member) ?? 0) + count)
    bucket.total += total
    prune(this.#keys, minute - KEYS_KEPT_MINUTES)
  }

  async readCounts (minutes: readonly number[]): Promise<Array<Map<string, MinuteCounts>>> {
    return minutes.map((minute) => new Map([...this.#counts.get(minute) ?? []].map(([ns, c]) => [ns, { ...c }])))
  }

  async readKeys (minutes: readonly number[]): Promise<{ keys: Map<string, number>, total: number }> {
    const keys = new Map<string, number>()
    let total = 0
    for (const minute of minutes) {
      const bucket = this.#keys.get(minute)
      if (bucket === undefined) continue
      total += bucket.total
      for (const [member, count] of bucket.keys) keys.set(member, (keys.get(member) ?? 0) + count)
    }
    return { keys, total }
  }
}

function prune (buckets: Map<number, unknown>, before: number): void {
  for (const minute of buckets.keys()) if (minute < before) buckets.delete(minute)
}

/** Distinct keys one batch counts; more in one batch are counted in the total only. */
const KEYS_PER_BATCH = 1000

/**
 * The cache's key sampler (the library's sampleKeys option): counts the sampled keys in memory,
 * at the cost of a map update, and adds them to the minute's sorted set every `flushMs`, scaled
 * by the sampling rate, so a share of the traffic reads the same whatever the rate.
 */
export class HotKeys implements KeySampler {
  #batch = new Map<string, number>()
  #sampled = 0
  #store?: MinuteStore
  #timer?: NodeJS.Timeout
  #onError: (err: unknown) => void = () => {}

  constructor (readonly every: number, readonly flushMs = 5000) {}

  readonly record = (namespace: string, key: string): void => {
    this.#sampled++
    const member = memberOf(namespace, key)
    const count = this.#batch.get(member)
    if (count !== undefined) this.#batch.set(member, count + 1)
    else if (this.#batch.size < KEYS_PER_BATCH) this.#batch.set(member, 1)
  }

  /** Starts adding the batches to the store; until then, and after stop(), nothing is written. */
  start (store: MinuteStore, onError: (err: unknown) => void): void {
    this.#store = store
    this.#onError = onError
    this.#timer = setInterval(() => { this.flush().catch(onError) }, this.flushMs).unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.flush().catch(this.#onError)
    this.#store = undefined
  }

  /** Adds the batch to this minute's keys; a batch the store refused is dropped (a view, not a ledger). */
  async flush (now = Date.now()): Promise<void> {
    if (this.#store === undefined || this.#sampled === 0) return
    const [batch, sampled] = [this.#batch, this.#sampled]
    this.#batch = new Map()
    this.#sampled = 0
    for (const [member, count] of batch) batch.set(member, count * this.every)
    await this.#store.addKeys(minuteOf(now), batch, sampled * this.every)
  }
}

/**
 * This instance's cache counters, added per minute to the shared history: every `everyMs` the
 * counts since the last time, per namespace.
 */
export class MinuteRecorder {
  readonly #last = new Map<string, MinuteCounts>()
  #timer?: NodeJS.Timeout

  constructor (readonly cache: Cache, readonly store: MinuteStore, readonly everyMs = 10_000) {}

  start (onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => { this.record().catch(onError) }, this.everyMs).unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.record()
  }

  async record (now = Date.now()): Promise<void> {
    const deltas = new Map<string, MinuteCounts>()
    const taken = new Map<string, MinuteCounts>()
    for (const namespace of this.cache.namespaces()) {
      const counters = this.cache.counters(namespace)
      const last = this.#last.get(namespace) ?? { hits: 0, misses: 0, errors: 0 }
      const delta = { hits: counters.hits - last.hits, misses: counters.misses - last.misses, errors: counters.errors - last.errors }
      taken.set(namespace, { hits: counters.hits, misses: counters.misses, errors: counters.errors })
      if (delta.hits !== 0 || delta.misses !== 0 || delta.errors !== 0) deltas.set(namespace, delta)
    }
    if (deltas.size === 0) return
    await this.store.addCounts(minuteOf(now), deltas)
    // Only once the store took them: counts it refused go with the next minute.
    for (const [namespace, counters] of taken) this.#last.set(namespace, counters)
  }
}
