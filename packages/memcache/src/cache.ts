import { randomUUID } from 'node:crypto'
import { CircuitBreaker, type BreakerState } from './breaker.js'
import { decode } from './codec.js'
import { CacheCore, MISS, type KeySampler } from './core.js'
import { checkKey, encodeValue, prefixed, storeKey, valuePrefixes, type NamespaceOption } from './keys.js'
import { Lists, type ListAddOptions, type ListEntry, type ListLookup, type ListReservationLookup, type ListReserveOptions } from './lists.js'
import { silent, type CacheLogger } from './logger.js'
import { Memoizer, type Memoized, type MemoizeOptions } from './memoize.js'
import { FAILED } from './runner.js'
import type { CacheCounters, CacheStats } from './stats.js'
import { CounterOverflowError, MAX_COUNTER, type CacheStore, type PeekedEntry, type SubscribeHandlers, type Subscription, type WriteMode } from './stores/store.js'
import { memcacheTtlMs } from './ttl.js'

export type Lookup<T> =
  | { status: 'hit', value: T }
  | { status: 'miss' }
  /** The store could not answer (down, timed out, circuit open): a miss the caller may treat differently. */
  | { status: 'unavailable' }

/** A counter's value: a number while it is a safe integer, a bigint beyond (or when a bigint was stored). */
export type Counter = number | bigint

/** A value with the token that cas() compares. */
export interface CasItem<T> {
  value: T
  casToken: string
}

/**
 * memcache's peek(): a value with its timestamps, in Unix seconds. Found also while the key
 * is delete-locked, then without a value.
 */
export interface PeekedItem<T> {
  /** undefined while the key is delete-locked. */
  value: T | undefined
  /** When it expires; 0 when it never does. */
  expirationTimeSec: number
  /** When it was last read or written; 0 when the store cannot tell (Redis under an LFU eviction policy). */
  lastAccessTimeSec: number
  /** Until when the delete lock holds; 0 when the key is not locked. */
  deleteLockTimeSec: number
}

/**
 * What inspect() finds under a key: peek()'s timestamps, and what an operator needs besides:
 * where the key lives in the store and the size of its value as stored.
 */
export interface InspectedItem<T> extends PeekedItem<T> {
  /** The key in the store: the namespace's prefix, and the key itself or its hash when it is too long. */
  storeKey: string
  /** The stored (serialized) value's size in bytes; 0 while the key is delete-locked. */
  storedBytes: number
  /** The stored text when it cannot be decoded (written by something else); `value` is then undefined. */
  undecodable?: string
}

export interface CacheOptions {
  store: CacheStore
  /** The namespace of calls that name none. */
  namespace?: string
  logger?: CacheLogger
  breaker?: CircuitBreaker
  /** How often this process adds its counts to the shared ones (default 2 s). */
  statsFlushMs?: number
  /** A read replica of the store, for views that read with `reads: 'replica'`. */
  replica?: CacheStore
  /**
   * Hands one key in about `every` that any view reads or writes to `record`, for a view of the
   * busiest keys; off without it. `record` runs on the call's path: it should only count.
   */
  sampleKeys?: KeySampler
}

export interface ViewOptions {
  /**
   * 'replica': get, getMulti, lookup and getStats read the replica (when there is one and it
   * answers, else the primary), for data that tolerates replication lag. gets() always reads the primary.
   */
  reads?: 'primary' | 'replica'
}

export interface WriteOptions extends NamespaceOption {
  /** Seconds, with memcache's rules: 0 = no expiry, up to 30 days relative, larger an absolute Unix time. */
  ttl?: number
}

export interface PrefixOption {
  /** Prepended to every key of the call, and stripped from the keys it returns. */
  keyPrefix?: string
}

export interface DeleteOptions extends NamespaceOption {
  /** Seconds (memcache's TTL rules) during which add() of the deleted key fails. */
  lockSeconds?: number
}

export interface OffsetOptions extends NamespaceOption {
  /** Delta to add, 1 by default; never negative (use decr). */
  delta?: Counter
  /** Value a missing key starts from; without it a missing key stays missing. */
  initialValue?: Counter
}

function toBigInt (value: Counter, what: string): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number or a bigint, got ${typeof value}`)
  if (!Number.isSafeInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`)
  return BigInt(value)
}

function lookupOf<T> (found: unknown): Lookup<T> {
  if (found === FAILED) return { status: 'unavailable' }
  return found === MISS ? { status: 'miss' } : { status: 'hit', value: found as T }
}

function valueOf<T> (found: unknown): T | undefined {
  return found === FAILED || found === MISS ? undefined : found as T
}

function seconds (ms: number): number {
  return Math.floor(ms / 1000)
}

/** What the views of one store share besides the core: its memoized functions and its lists. */
interface Parts {
  core: CacheCore
  memoizer: Memoizer
  lists: Lists
}

const parts = new WeakMap<Cache, Parts>()
/** What namespaced() hands the one constructor call that makes its view: no public option carries it. */
let adopting: { parts: Parts, reads: 'primary' | 'replica' } | undefined

/** The core behind a view, for the library's own modules; not part of the package's API. */
export function coreOf (cache: Cache): CacheCore {
  return parts.get(cache)!.core
}

/**
 * The App Engine memcache API over one key space (a namespace of a store). It fails open
 * through the core's runner: a store error or timeout is a miss, a false or a no-op here.
 * Misuse (a bad key or TTL, a value too large, a negative delta, a counter overflow) still throws.
 * Memoization, bounded lists and stats are modules of their own that the methods below reach.
 */
export class Cache {
  readonly namespace: string
  readonly reads: 'primary' | 'replica'
  readonly #core: CacheCore
  readonly #parts: Parts

  constructor ({ store, namespace = 'default', logger = silent, breaker = new CircuitBreaker(), statsFlushMs = 2000, replica, sampleKeys }: CacheOptions) {
    // Taken before anything can throw: a refused namespace must not leave it for the next cache made.
    const view = adopting
    adopting = undefined
    checkKey(namespace, 'namespace')
    this.namespace = namespace
    this.reads = view?.reads ?? 'primary'
    if (view === undefined) {
      const core = new CacheCore(store, replica, breaker, logger, statsFlushMs, namespace, sampleKeys)
      this.#parts = { core, memoizer: new Memoizer(core), lists: new Lists(core) }
    } else {
      this.#parts = view.parts
    }
    this.#core = this.#parts.core
    parts.set(this, this.#parts)
  }

  get store (): CacheStore {
    return this.#core.store
  }

  /** The same store, breaker and counters with another default namespace. */
  namespaced (namespace: string, { reads = this.reads }: ViewOptions = {}): Cache {
    adopting = { parts: this.#parts, reads }
    return new Cache({ store: this.#core.store, namespace })
  }

  /** Whether the store is expected to answer now. */
  get available (): boolean {
    return this.#core.store.connected && this.#core.runner.primary.breaker.state !== 'open'
  }

  /** The circuit breaker of the store's primary, for an operator's metrics. */
  get breakerState (): BreakerState {
    return this.#core.runner.primary.breaker.state
  }

  // Stats

  /** The namespaces this process has counted reads in. */
  namespaces (): string[] {
    return this.#core.stats.namespaces()
  }

  /**
   * Counts a hit that a caller served from a copy of its own (a first tier in front of the
   * store), so the namespace's hit ratio tells the whole story; with `key`, sampleKeys sees it too.
   */
  recordHit ({ namespace = this.namespace, key }: NamespaceOption & { key?: string } = {}): void {
    this.#core.stats.count(namespace).hits++
    // Named, the key is one of the operations sampleKeys sees.
    if (key !== undefined) this.#core.sample(namespace, key)
  }

  /** This process's counters for a namespace (the default one unless named). */
  counters (namespace = this.namespace): CacheCounters {
    return this.#core.stats.count(namespace)
  }

  /** Adds this process's new counts to the shared ones, in one round trip. */
  async flushStats (): Promise<void> {
    await this.#core.stats.flush()
  }

  /**
   * memcache's stats for a namespace, across every process sharing the store; see Stats.report().
   * `census: false` skips counting the items, for a page that shows only hits and misses.
   */
  async getStats ({ namespace = this.namespace, census = true }: NamespaceOption & { census?: boolean } = {}): Promise<CacheStats> {
    return await this.#core.stats.report(namespace, census, this.reads)
  }

  /** Flushes the counters; call before the store's client closes. */
  async close (): Promise<void> {
    await this.#core.stats.flush()
  }

  // Reads

  lookup<T> (key: string, { namespace = this.namespace }: NamespaceOption = {}): Promise<Lookup<T>> {
    return this.#core.readOne(key, namespace, this.reads, lookupOf<T>)
  }

  /** Not async, as lookup(): the read's own promise is the answer. */
  get<T> (key: string, { namespace = this.namespace }: NamespaceOption = {}): Promise<T | undefined> {
    return this.#core.readOne(key, namespace, this.reads, valueOf<T>)
  }

  /**
   * The keys found, without the prefix; a failure finds nothing. With `forCas`, each with
   * the token for cas() and casMulti() (read from the primary, as gets()).
   */
  async getMulti<T> (keys: readonly string[], options: PrefixOption & NamespaceOption & { forCas: true }): Promise<Record<string, CasItem<T>>>
  async getMulti<T> (keys: readonly string[], options?: PrefixOption & NamespaceOption & { forCas?: false }): Promise<Record<string, T>>
  async getMulti<T> (keys: readonly string[], { keyPrefix = '', namespace = this.namespace, forCas = false }: PrefixOption & NamespaceOption & { forCas?: boolean } = {}): Promise<Record<string, T | CasItem<T>>> {
    const all = prefixed(keys, keyPrefix)
    // A replica's token may be older than the primary's: cas() would fail on it.
    const found = await this.#core.read(all, namespace, all.length, forCas ? 'primary' : this.reads, forCas)
    const result: Record<string, T | CasItem<T>> = {}
    keys.forEach((key, i) => {
      const entry = found[i]
      if (entry !== undefined && entry !== FAILED) result[key] = forCas ? { value: entry.value as T, casToken: entry.casToken! } : entry.value as T
    })
    return result
  }

  /** The value with a token for cas(). */
  async gets<T> (key: string, { namespace }: NamespaceOption = {}): Promise<CasItem<T> | undefined> {
    checkKey(key)
    return (await this.getMulti<T>([key], { namespace, forCas: true }))[key]
  }

  /** memcache's peek(): the value with its timestamps, also for a delete-locked key; see peekMulti(). */
  async peek<T> (key: string, { namespace }: NamespaceOption = {}): Promise<PeekedItem<T> | undefined> {
    checkKey(key)
    return (await this.peekMulti<T>([key], { namespace }))[key]
  }

  /**
   * The keys found, without the prefix, each with its timestamps; a delete-locked key is found
   * without a value. Counted in the stats as a read (a locked key as a hit of no bytes), but
   * the items keep their place in the eviction order. Reads the primary.
   */
  async peekMulti<T> (keys: readonly string[], { keyPrefix = '', namespace = this.namespace }: PrefixOption & NamespaceOption = {}): Promise<Record<string, PeekedItem<T>>> {
    const storeKeys = prefixed(keys, keyPrefix).map((key) => storeKey(key, namespace))
    const found = await this.#core.runner.run(namespace, (store) => store.peek(storeKeys))
    const result: Record<string, PeekedItem<T>> = {}
    if (found === FAILED) return result
    const counters = this.counters(namespace)
    found.forEach((entry: PeekedEntry | undefined, i) => {
      let value: T | undefined
      if (entry?.value !== undefined) {
        try {
          value = decode<T>(entry.value)
        } catch (err) {
          counters.errors++
          this.#core.log.warn({ err, namespace, key: keys[i] }, 'cache value could not be decoded; treated as a miss')
          entry = undefined
        }
      }
      if (entry === undefined) {
        counters.misses++
        return
      }
      counters.hits++
      counters.byteHits += entry.value === undefined ? 0 : Buffer.byteLength(entry.value)
      result[keys[i]!] = {
        value,
        expirationTimeSec: seconds(entry.expiresAtMs),
        lastAccessTimeSec: seconds(entry.lastAccessMs),
        deleteLockTimeSec: seconds(entry.lockedUntilMs)
      }
    })
    return result
  }

  /**
   * What the key holds, for an operator's console: as peek(), with its place and size in the
   * store, but neither counted in the stats nor sampled, and 'unavailable' when the store fails.
   */
  async inspect<T> (key: string, { namespace = this.namespace }: NamespaceOption = {}): Promise<InspectedItem<T> | undefined | 'unavailable'> {
    const at = storeKey(key, namespace)
    const found = await this.#core.runner.run(namespace, (store) => store.peek([at]))
    if (found === FAILED) return 'unavailable'
    const entry = found[0]
    if (entry === undefined) return undefined
    const item: InspectedItem<T> = {
      storeKey: at,
      value: undefined,
      storedBytes: entry.value === undefined ? 0 : Buffer.byteLength(entry.value),
      expirationTimeSec: seconds(entry.expiresAtMs),
      lastAccessTimeSec: seconds(entry.lastAccessMs),
      deleteLockTimeSec: seconds(entry.lockedUntilMs)
    }
    if (entry.value !== undefined) {
      try {
        item.value = decode<T>(entry.value)
      } catch {
        item.undecodable = entry.value
      }
    }
    return item
  }

  // Writes

  /** Stores the value; false when the store could not take it. */
  async set (key: string, value: unknown, options: WriteOptions = {}): Promise<boolean> {
    checkKey(key)
    return (await this.setMulti({ [key]: value }, options)).length === 0
  }

  /** Stores the value only if the key is absent (and not locked by a delete). */
  async add (key: string, value: unknown, options: WriteOptions = {}): Promise<boolean> {
    checkKey(key)
    return (await this.addMulti({ [key]: value }, options)).length === 0
  }

  /** Stores the value only if the key is present. */
  async replace (key: string, value: unknown, options: WriteOptions = {}): Promise<boolean> {
    checkKey(key)
    return (await this.replaceMulti({ [key]: value }, options)).length === 0
  }

  /** The keys (without the prefix) that were not stored. */
  async setMulti (mapping: Record<string, unknown>, options: WriteOptions & PrefixOption = {}): Promise<string[]> {
    return await this.#writeMulti('set', mapping, options)
  }

  async addMulti (mapping: Record<string, unknown>, options: WriteOptions & PrefixOption = {}): Promise<string[]> {
    return await this.#writeMulti('add', mapping, options)
  }

  async replaceMulti (mapping: Record<string, unknown>, options: WriteOptions & PrefixOption = {}): Promise<string[]> {
    return await this.#writeMulti('replace', mapping, options)
  }

  /** Stores the value only if nobody wrote the key since gets() handed out the token. */
  async cas (key: string, value: unknown, casToken: string, options: WriteOptions = {}): Promise<boolean> {
    checkKey(key)
    return (await this.casMulti({ [key]: { value, casToken } }, options)).length === 0
  }

  /** cas() of each key with its token (from gets() or getMulti with forCas); the keys not stored. */
  async casMulti (mapping: Record<string, CasItem<unknown>>, { ttl = 0, keyPrefix = '', namespace = this.namespace }: WriteOptions & PrefixOption = {}): Promise<string[]> {
    const keys = Object.keys(mapping)
    const life = memcacheTtlMs(ttl)
    const writes = prefixed(keys, keyPrefix).map((key, i) => {
      const { value, casToken } = mapping[keys[i]!]!
      if (typeof casToken !== 'string') throw new TypeError(`the casToken for cache key "${key.slice(0, 100)}" must be the string gets() answered`)
      return { entry: { key: storeKey(key, namespace), value: encodeValue(key, value), casToken: randomUUID(), ttlMs: life }, expected: casToken, key }
    })
    if (writes.length === 0) return []
    for (const { key } of writes) this.#core.sample(namespace, key)
    const stored = await this.#core.runner.run(namespace, async (store) => await Promise.all(writes.map(({ entry, expected }) => store.cas(entry, expected))))
    return keys.filter((_key, i) => stored === FAILED || !stored[i])
  }

  /**
   * 'deleted' when the key held a value or a delete lock (a lock is then renewed with the new
   * lockSeconds, or lifted without: the last delete wins), 'missing', or 'failed'.
   */
  async delete (key: string, options: DeleteOptions = {}): Promise<'deleted' | 'missing' | 'failed'> {
    checkKey(key)
    const [result] = await this.#deleteAll([key], options)
    return result ?? 'failed'
  }

  /** True when every key is gone (deleted or already missing); false when the store failed. */
  async deleteMulti (keys: readonly string[], { keyPrefix = '', ...options }: DeleteOptions & PrefixOption = {}): Promise<boolean> {
    const results = await this.#deleteAll(prefixed(keys, keyPrefix), options)
    return !results.includes('failed')
  }

  /** The new value, or undefined when the key is missing (without initialValue), holds no integer, or the store failed. */
  async incr (key: string, options: OffsetOptions = {}): Promise<Counter | undefined> {
    checkKey(key)
    return await this.#offset(key, toBigInt(options.delta ?? 1, 'delta'), options, 'incr')
  }

  /** Like incr, downwards; the value never goes below 0, as in memcache. */
  async decr (key: string, options: OffsetOptions = {}): Promise<Counter | undefined> {
    checkKey(key)
    return await this.#offset(key, -toBigInt(options.delta ?? 1, 'delta'), options, 'decr')
  }

  /** Applies each delta (negative ones decrement); a key maps to its new value or undefined. */
  async offsetMulti (mapping: Record<string, Counter>, { keyPrefix = '', initialValue, namespace }: PrefixOption & Omit<OffsetOptions, 'delta'> = {}): Promise<Record<string, Counter | undefined>> {
    const entries = Object.entries(mapping).map(([key, delta]) => [key, toBigInt(delta, 'delta')] as const)
    const keys = prefixed(entries.map(([key]) => key), keyPrefix)
    const values = await Promise.all(entries.map(async ([, delta], i) =>
      await this.#offset(keys[i]!, delta, { initialValue, namespace }, 'offset')))
    return Object.fromEntries(entries.map(([key], i) => [key, values[i]]))
  }

  /** Removes every value of the namespace (the default one unless named), and nothing else. */
  async flushAll ({ namespace = this.namespace }: NamespaceOption = {}): Promise<boolean> {
    const prefixes = valuePrefixes(namespace)
    const flushed = await this.#core.runner.run(namespace, async (store) => {
      for (const prefix of prefixes) await store.flush(prefix)
      return true
    })
    return flushed === true
  }

  // Bounded lists and their announcements: see lists.ts.

  /** The list at key: ready, still being built (listBegin), missing, or the store unavailable. */
  async listGet<T> (key: string, { namespace = this.namespace }: NamespaceOption = {}): Promise<ListLookup<T>> {
    return await this.#parts.lists.get<T>(key, namespace)
  }

  /**
   * Claims the building of a missing list: an empty list marked building is created, alive for
   * lockSeconds, and `began` is true; items added meanwhile are kept. Else the list as it is.
   */
  async listBegin<T> (key: string, { lockSeconds, namespace = this.namespace }: NamespaceOption & { lockSeconds: number }): Promise<ListLookup<T> & { began?: boolean }> {
    return await this.#parts.lists.begin<T>(key, namespace, lockSeconds)
  }

  /**
   * Adds the entries to the list (ids already there are kept, reserved ones settled by the entry
   * added), keeps the newest `limit` settled ones, and announces the change. With `complete`, the
   * list is marked built and lives `complete.ttl` seconds. A missing list stays missing: it would
   * lack the older entries.
   */
  async listAdd<T> (key: string, entries: ReadonlyArray<ListEntry<T>>, options: ListAddOptions): Promise<ListLookup<T>> {
    return await this.#parts.lists.add<T>(key, options.namespace ?? this.namespace, entries, options)
  }

  /**
   * Decides, in one step shared by every process, whether `value` is new at the head of the list,
   * and if so reserves the head for it: see ListReservationLookup. `seed` names the entry
   * together with the newest settled entry; `order` is raised above the head's. Counted as a hit
   * when the value is already the newest, as a miss when there is no ready list.
   */
  async listReserve<T> (key: string, request: { value: T, seed: string, order: number }, options: ListReserveOptions): Promise<ListReservationLookup<T>> {
    return await this.#parts.lists.reserve<T>(key, options.namespace ?? this.namespace, request, options)
  }

  /** Gives up a reservation of listReserve(): the entry with that id goes, unless it was settled meanwhile. */
  async listRelease<T> (key: string, id: string, { namespace = this.namespace }: NamespaceOption = {}): Promise<ListLookup<T>> {
    return await this.#parts.lists.release<T>(key, namespace, id)
  }

  /** Announces a change of the key (one made without listAdd, such as a delete). */
  async announce (key: string, { namespace = this.namespace }: NamespaceOption = {}): Promise<boolean> {
    return await this.#parts.lists.announce(key, namespace)
  }

  /** The key's announcements, from every process sharing the store. */
  subscribe (key: string, handlers: SubscribeHandlers, { namespace = this.namespace }: NamespaceOption = {}): Subscription {
    return this.#parts.lists.subscribe(key, namespace, handlers)
  }

  // Memoization: see memoize.ts.

  /**
   * A function whose results are cached for `ttl` seconds per arguments. Concurrent calls
   * for a key that is not cached run `fn` once in this process, and across processes
   * sharing the store at most once at a time; with `grace`, a stale result is served while
   * one caller refreshes it. When the cache is down, `fn` simply runs.
   */
  memoize<A extends unknown[], R> (fn: (...args: A) => R | Promise<R>, options: MemoizeOptions<A>): Memoized<A, R> {
    return this.#parts.memoizer.memoize(this, fn, options)
  }

  /** Forgets the result for these arguments, or with none, every result of the function. */
  async deleteMemoized (fn: Function, ...args: unknown[]): Promise<boolean> {
    return await this.#parts.memoizer.forget(fn, args)
  }

  async #writeMulti (mode: WriteMode, mapping: Record<string, unknown>, { ttl = 0, keyPrefix = '', namespace = this.namespace }: WriteOptions & PrefixOption): Promise<string[]> {
    const keys = Object.keys(mapping)
    // Validate everything before anything is written.
    const life = memcacheTtlMs(ttl)
    const all = prefixed(keys, keyPrefix)
    for (const key of all) this.#core.sample(namespace, key)
    const entries = all.map((key, i) => ({
      key: storeKey(key, namespace),
      value: encodeValue(key, mapping[keys[i]!]),
      casToken: randomUUID(),
      ttlMs: life
    }))
    if (entries.length === 0) return []
    const stored = await this.#core.runner.run(namespace, (store) => store.write(mode, entries))
    return keys.filter((_key, i) => stored === FAILED || !stored[i])
  }

  async #deleteAll (keys: readonly string[], { lockSeconds = 0, namespace = this.namespace }: DeleteOptions): Promise<Array<'deleted' | 'missing' | 'failed'>> {
    const lock = memcacheTtlMs(lockSeconds)
    const storeKeys = keys.map((key) => storeKey(key, namespace))
    if (keys.length === 0) return []
    for (const key of keys) this.#core.sample(namespace, key)
    const existed = await this.#core.runner.run(namespace, (store) => store.delete(storeKeys, lock))
    return keys.map((_key, i) => existed === FAILED ? 'failed' : existed[i] === true ? 'deleted' : 'missing')
  }

  async #offset (key: string, delta: bigint, { initialValue, namespace = this.namespace }: Omit<OffsetOptions, 'delta'>, kind: 'incr' | 'decr' | 'offset'): Promise<Counter | undefined> {
    if (kind !== 'offset' && (kind === 'incr' ? delta < 0n : delta > 0n)) throw new RangeError(`${kind} takes a delta >= 0`)
    const initial = initialValue === undefined ? undefined : toBigInt(initialValue, 'initialValue')
    if (initial !== undefined && initial < 0n) throw new RangeError('initialValue must be >= 0')
    if (delta > MAX_COUNTER || -delta > MAX_COUNTER || (initial !== undefined && initial + delta > MAX_COUNTER)) {
      throw new CounterOverflowError(`${kind} of "${key}" would pass 2^63 - 1`)
    }
    const key_ = storeKey(key, namespace)
    this.#core.sample(namespace, key)
    const value = await this.#core.runner.run(namespace, (store) => store.incr(key_, delta, initial, randomUUID()))
    return value === FAILED || value === undefined ? undefined : decode<Counter>(value)
  }
}

export function createCache (options: CacheOptions): Cache {
  return new Cache(options)
}
