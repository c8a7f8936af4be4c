import { createHash, randomUUID } from 'node:crypto'
import { CircuitBreaker } from './breaker.js'
import { decode, encode } from './codec.js'
import {
  CounterOverflowError, MAX_COUNTER, type PeekedEntry, type Store, type ListReservations, type StoredEntry, type StoredList, type SubscribeHandlers, type Subscription, type WriteMode
} from './stores/store.js'
import { memcacheTtlMs, ttlMs } from './ttl.js'

/** Keys longer than memcache's limit are hashed, not refused. */
export const MAX_KEY_BYTES = 250
/**
 * memcache's value limit: on the UTF-8 bytes of a string, the bytes of a Buffer, and the
 * serialized form of any other value (memcache's pickle).
 */
export const MAX_VALUE_BYTES = 1_000_000

export class ValueTooLargeError extends RangeError {
  override name = 'ValueTooLargeError'
}

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

export interface ListEntry<T> {
  id: string
  order: number
  value: T
}

export interface ListState<T> {
  /** The settled entries, newest first. */
  items: Array<ListEntry<T>>
  /** What is reserved and not settled yet (listReserve): not listed, not counted in the limit. */
  reserved: ListReservations
  /** Grows with every change, also across a delete. */
  version: number
  /** Milliseconds left; -1 for no expiry. */
  ttlMs: number
}

/** A bounded list read, started or changed: see listGet(), listBegin() and listAdd(). */
export type ListLookup<T> =
  | ({ status: 'ready' } & ListState<T>)
  /** Started by listBegin() and not complete yet. */
  | ({ status: 'building' } & ListState<T>)
  | { status: 'miss' }
  | { status: 'unavailable' }

/**
 * What listReserve() decided, atomically against every process sharing the store:
 * - `reserved`: the entry is now the list's head, reserved under `id` (named after the head it
 *   follows, see listItemId) with `order` (raised above the head's): settle it with listAdd(), or
 *   give it up with listRelease(); a reservation left longer than its time drops the whole list;
 * - `same`: the newest settled entry holds this value, and no entry of it is reserved above: nothing to add;
 * - `reserved-already`: an entry of this value is reserved above the newest settled one, and its writer has not settled it yet;
 * - `building`: the list is being built and cannot decide; `miss`: there is no list; `unavailable`: the store did not answer.
 * The lists of the first three are ready lists, reservations included.
 */
export type ListReservationLookup<T> =
  | ({ status: 'reserved', id: string, order: number } & ListState<T>)
  | ({ status: 'same' | 'reserved-already' | 'building' } & ListState<T>)
  | { status: 'miss' }
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

export interface CacheOptions {
  store: Store
  /** The namespace of calls that name none. */
  namespace?: string
  logger?: CacheLogger
  breaker?: CircuitBreaker
  /** How often this process adds its counts to the shared ones (default 2 s). */
  statsFlushMs?: number
  /** A read replica of the store, for views that read with `reads: 'replica'`. */
  replica?: Store
}

export interface ViewOptions {
  /**
   * 'replica': get, getMulti, lookup and getStats read the replica (when there is one and it
   * answers, else the primary), for data that tolerates replication lag. gets() always reads the primary.
   */
  reads?: 'primary' | 'replica'
}

export interface NamespaceOption {
  namespace?: string
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

export interface MemoizeOptions<A extends unknown[]> extends NamespaceOption {
  /** Seconds a result is fresh. */
  ttl: number
  /** The function's name in keys (default: its own name), or a key built from the arguments. */
  key?: string | ((...args: A) => string)
  /** Seconds after ttl during which the old result is still served while one caller refreshes it. */
  grace?: number
  /** Seconds one process may compute a result before others stop waiting for it (default 10). */
  lockSeconds?: number
}

export type Memoized<A extends unknown[], R> = (...args: A) => Promise<R>

/** What a memoized result is stored as: the value, the function's generation, and when it goes stale. */
interface MemoEntry {
  v?: unknown
  g: number
  f: number
}

interface MemoState {
  name: string
  keyOf: (args: unknown[]) => string
  options: MemoizeOptions<unknown[]>
}

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

const silent: CacheLogger = { info () {}, warn () {}, debug () {} }
const FAILED = Symbol('failed')

/** A store with the breaker that guards it. */
interface Guarded {
  store: Store
  breaker: CircuitBreaker
}

/** What every namespace view of one store shares. */
interface Shared extends Guarded {
  replica?: Guarded
  log: CacheLogger
  /** This process's counts per namespace, and the part of them already added to the store's. */
  counters: Map<string, CacheCounters>
  flushed: Map<string, CacheCounters>
  statsFlushMs: number
  flushTimer?: NodeJS.Timeout
  /** When this process last logged its counters. */
  loggedAt: number
  /** Memoized calls running in this process, by key: concurrent callers share them. */
  inFlight: Map<string, Promise<unknown>>
  /** Both the original and the memoized function lead to the memo's settings. */
  memos: WeakMap<Function, MemoState>
}

const COUNTER_NAMES = ['hits', 'misses', 'byteHits', 'errors'] as const
const LONE_SURROGATE = /\p{Surrogate}/u
/** getStats() counts at most this many keys of a namespace. */
const CENSUS_LIMIT = 100_000

function toBigInt (value: Counter, what: string): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number or a bigint, got ${typeof value}`)
  if (!Number.isSafeInteger(value)) throw new RangeError(`${what} must be an integer, got ${value}`)
  return BigInt(value)
}

/**
 * Keys are strings, and nothing else: a number would be one key here and another there.
 * Misuse throws before the store is called, so it never counts as a store failure.
 */
function checkKey (key: unknown, what = 'cache key'): asserts key is string {
  if (typeof key !== 'string') {
    throw new TypeError(`${what} must be a string, got ${key === null ? 'null' : typeof key}${typeof key === 'number' ? ` (${key})` : ''}`)
  }
}

/** The keys with the prefix, each checked. */
function prefixed (keys: readonly string[], keyPrefix: string): string[] {
  checkKey(keyPrefix, 'keyPrefix')
  if (!Array.isArray(keys)) throw new TypeError('keys must be an array of strings')
  return keys.map((key) => {
    checkKey(key)
    return keyPrefix + key
  })
}

function seconds (ms: number): number {
  return Math.floor(ms / 1000)
}

/**
 * The App Engine memcache API over a store, failing open in one place: every store
 * error or timeout becomes a miss, a false or a no-op here, and trips a circuit
 * breaker shared by every namespace on the same store. Misuse (a bad TTL, a value
 * too large, a negative delta, a counter overflow) still throws.
 */
export class Cache {
  readonly namespace: string
  readonly reads: 'primary' | 'replica'
  readonly #shared: Shared

  /** `shared` is for namespaced(): views of one store share its breaker and counters. */
  constructor ({ store, namespace = 'default', logger = silent, breaker = new CircuitBreaker(), statsFlushMs = 2000, replica }: CacheOptions,
    shared?: Shared, { reads = 'primary' }: ViewOptions = {}) {
    this.namespace = namespace
    this.reads = reads
    this.#shared = shared ?? {
      store,
      breaker,
      replica: replica === undefined ? undefined : { store: replica, breaker: new CircuitBreaker() },
      log: logger,
      counters: new Map(),
      flushed: new Map(),
      statsFlushMs,
      loggedAt: Date.now(),
      inFlight: new Map(),
      memos: new WeakMap()
    }
  }

  get store (): Store {
    return this.#shared.store
  }

  /** The same store, breaker and counters with another default namespace. */
  namespaced (namespace: string, options: ViewOptions = { reads: this.reads }): Cache {
    return new Cache({ store: this.#shared.store, namespace }, this.#shared, options)
  }

  /** Whether the store is expected to answer now. */
  get available (): boolean {
    return this.#shared.store.connected && this.#shared.breaker.state !== 'open'
  }

  /** The namespaces this process has counted reads in. */
  namespaces (): string[] {
    return [...this.#shared.counters.keys()]
  }

  /**
   * Counts a hit that a caller served from a copy of its own (a first tier in front of the
   * store), so the namespace's hit ratio tells the whole story.
   */
  recordHit ({ namespace }: NamespaceOption = {}): void {
    this.counters(namespace).hits++
  }

  /** This process's counters for a namespace (the default one unless named). */
  counters (namespace = this.namespace): CacheCounters {
    let counters = this.#shared.counters.get(namespace)
    if (counters === undefined) {
      counters = { hits: 0, misses: 0, byteHits: 0, errors: 0 }
      this.#shared.counters.set(namespace, counters)
    }
    // Counting schedules a flush; the request that counts never waits for it.
    this.#shared.flushTimer ??= setTimeout(() => { this.flushStats().catch(() => {}) }, this.#shared.statsFlushMs).unref()
    return counters
  }

  /** Adds this process's new counts to the shared ones, in one round trip; kept for later when the store fails. */
  async flushStats (): Promise<void> {
    const shared = this.#shared
    clearTimeout(shared.flushTimer)
    shared.flushTimer = undefined
    const batch = new Map<string, Record<string, number>>()
    const sent = new Map<CacheCounters, Record<string, number>>()
    for (const [namespace, counters] of shared.counters) {
      let flushed = shared.flushed.get(namespace)
      if (flushed === undefined) {
        flushed = { hits: 0, misses: 0, byteHits: 0, errors: 0 }
        shared.flushed.set(namespace, flushed)
      }
      const deltas = Object.fromEntries(COUNTER_NAMES.map((name) => [name, counters[name] - flushed[name]]))
      if (Object.values(deltas).every((delta) => delta === 0)) continue
      batch.set(this.#statsKey(namespace), deltas)
      // Counted as flushed before the round trip, so a concurrent flush cannot send the same counts again.
      for (const name of COUNTER_NAMES) flushed[name] += deltas[name]!
      sent.set(flushed, deltas)
    }
    if (batch.size === 0) return
    const done = await this.#run(undefined, async () => { await shared.store.addCounters(batch) })
    if (done === FAILED) {
      for (const [flushed, deltas] of sent) for (const name of COUNTER_NAMES) flushed[name] -= deltas[name]!
      return
    }
    // This process's totals per namespace, once a minute at most, for log-based metrics.
    if (Date.now() - shared.loggedAt >= 60_000) {
      shared.loggedAt = Date.now()
      shared.log.info({ cacheCounters: Object.fromEntries(shared.counters) }, 'cache counters')
    }
  }

  /**
   * memcache's stats for a namespace, across every process sharing the store. Hits and
   * misses of other processes may lag by their flush interval. Items are counted (up to
   * 100,000 keys); bytes and the oldest item's age come from a sample of 64 items.
   */
  async getStats ({ namespace = this.namespace, census: count = true }: NamespaceOption & { census?: boolean } = {}): Promise<CacheStats> {
    await this.flushStats()
    const ns = encodeURIComponent(namespace)
    const shared = await this.#readOnce(namespace, (store) => store.readCounters(this.#statsKey(namespace)))
    // Counting items scans the keyspace: a page that shows only hits and misses skips it.
    const census = count
      ? await this.#readOnce(namespace, (store) => store.census([`${ns}:k:`, `${ns}:h:`], CENSUS_LIMIT))
      : { items: 0, bytes: 0, oldestItemAge: 0, complete: false }
    const counts: Partial<CacheCounters> = shared === FAILED ? this.counters(namespace) : shared
    return {
      hits: counts.hits ?? 0,
      misses: counts.misses ?? 0,
      byteHits: counts.byteHits ?? 0,
      errors: counts.errors ?? 0,
      ...(census === FAILED
        ? { items: 0, bytes: 0, oldestItemAge: 0, statsComplete: false }
        : { items: census.items, bytes: census.bytes, oldestItemAge: census.oldestItemAge, statsComplete: census.complete })
    }
  }

  /** Flushes the counters; call before the store's client closes. */
  async close (): Promise<void> {
    await this.flushStats()
  }

  // Reads

  async lookup<T> (key: string, options: NamespaceOption = {}): Promise<Lookup<T>> {
    const [found] = await this.#read([key], options.namespace)
    if (found === FAILED) return { status: 'unavailable' }
    return found === undefined ? { status: 'miss' } : { status: 'hit', value: found.value as T }
  }

  async get<T> (key: string, options: NamespaceOption = {}): Promise<T | undefined> {
    const found = await this.lookup<T>(key, options)
    return found.status === 'hit' ? found.value : undefined
  }

  /**
   * The keys found, without the prefix; a failure finds nothing. With `forCas`, each with
   * the token for cas() and casMulti() (read from the primary, as gets()).
   */
  async getMulti<T> (keys: readonly string[], options: PrefixOption & NamespaceOption & { forCas: true }): Promise<Record<string, CasItem<T>>>
  async getMulti<T> (keys: readonly string[], options?: PrefixOption & NamespaceOption & { forCas?: false, statsKeys?: number }): Promise<Record<string, T>>
  async getMulti<T> (keys: readonly string[], { keyPrefix = '', namespace, statsKeys, forCas = false }: PrefixOption & NamespaceOption & { forCas?: boolean, statsKeys?: number } = {}): Promise<Record<string, T | CasItem<T>>> {
    // statsKeys: only the first keys count as hits or misses (the rest are counters read along).
    // A replica's token may be older than the primary's: cas() would fail on it.
    const found = await this.#read(prefixed(keys, keyPrefix), namespace, statsKeys, forCas ? 'primary' : this.reads)
    const result: Record<string, T | CasItem<T>> = {}
    keys.forEach((key, i) => {
      const entry = found[i]
      if (entry !== undefined && entry !== FAILED) result[key] = forCas ? { value: entry.value as T, casToken: entry.casToken } : entry.value as T
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
  async peekMulti<T> (keys: readonly string[], { keyPrefix = '', namespace }: PrefixOption & NamespaceOption = {}): Promise<Record<string, PeekedItem<T>>> {
    const storeKeys = prefixed(keys, keyPrefix).map((key) => this.#storeKey(key, namespace))
    const found = await this.#run(namespace, () => this.#shared.store.peek(storeKeys))
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
          this.#shared.log.warn({ err, namespace: namespace ?? this.namespace, key: keys[i] }, 'cache value could not be decoded; treated as a miss')
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
  async casMulti (mapping: Record<string, CasItem<unknown>>, { ttl = 0, keyPrefix = '', namespace }: WriteOptions & PrefixOption = {}): Promise<string[]> {
    const keys = Object.keys(mapping)
    const life = memcacheTtlMs(ttl)
    const writes = prefixed(keys, keyPrefix).map((key, i) => {
      const { value, casToken } = mapping[keys[i]!]!
      if (typeof casToken !== 'string') throw new TypeError(`the casToken for cache key "${key.slice(0, 100)}" must be the string gets() answered`)
      return { entry: { key: this.#storeKey(key, namespace), value: this.#encode(key, value), casToken: randomUUID(), ttlMs: life }, expected: casToken }
    })
    if (writes.length === 0) return []
    const stored = await this.#run(namespace, async () => await Promise.all(writes.map(({ entry, expected }) => this.#shared.store.cas(entry, expected))))
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
  // Bounded lists (not in memcache): kept newest first by order, one item per id, changed
  // atomically by any number of processes, each change announced on the key's channel.

  /** The list at key: ready, still being built (listBegin), missing, or the store unavailable. */
  async listGet<T> (key: string, { namespace }: NamespaceOption = {}): Promise<ListLookup<T>> {
    const list = await this.#run(namespace, () => this.#shared.store.listGet(this.#storeKey(key, namespace)))
    return this.#listLookup<T>(key, namespace, list, true)
  }

  /**
   * Claims the building of a missing list: an empty list marked building is created, alive for
   * lockSeconds, and `began` is true; items added meanwhile are kept. Else the list as it is.
   */
  async listBegin<T> (key: string, { lockSeconds, namespace }: NamespaceOption & { lockSeconds: number }): Promise<ListLookup<T> & { began?: boolean }> {
    const list = await this.#run(namespace, () => this.#shared.store.listBegin(this.#storeKey(key, namespace), ttlMs(lockSeconds)))
    const lookup = this.#listLookup<T>(key, namespace, list, false)
    return list === FAILED ? lookup : { ...lookup, began: list.began }
  }

  /**
   * Adds the entries to the list (ids already there are kept, reserved ones settled by the entry
   * added), keeps the newest `limit` settled ones, and announces the change. With `complete`, the
   * list is marked built and lives `complete.ttl` seconds. A missing list stays missing: it would
   * lack the older entries.
   */
  async listAdd<T> (key: string, entries: ReadonlyArray<ListEntry<T>>, { limit, complete, namespace }: NamespaceOption & { limit: number, complete?: { ttl: number } }): Promise<ListLookup<T>> {
    const items = entries.map(({ id, order, value }) => ({ id, order, value: this.#encode(key, value) }))
    const completeTtlMs = complete === undefined ? undefined : ttlMs(complete.ttl)
    const list = await this.#run(namespace, () => this.#shared.store.listAdd(this.#storeKey(key, namespace), items, limit, completeTtlMs))
    return this.#listLookup<T>(key, namespace, list, false)
  }

  /**
   * Decides, in one step shared by every process, whether `value` is new at the head of the list,
   * and if so reserves the head for it: see ListReservationLookup. `seed` names the entry
   * together with the head it follows; `order` is raised above the head's. Counted as a hit
   * when the value is already the newest, as a miss when there is no ready list.
   */
  async listReserve<T> (key: string, { value, seed, order }: { value: T, seed: string, order: number }, { limit, reserveSeconds, namespace }: NamespaceOption & { limit: number, reserveSeconds: number }): Promise<ListReservationLookup<T>> {
    const request = { value: this.#encode(key, value), seed, order }
    const reserved = await this.#run(namespace, () => this.#shared.store.listReserve(this.#storeKey(key, namespace), request, limit, ttlMs(reserveSeconds)))
    if (reserved === FAILED) return { status: 'unavailable' }
    const counters = this.counters(namespace)
    if (reserved === undefined || reserved.outcome === 'building') counters.misses++
    if (reserved?.outcome === 'same') counters.hits++
    const state = reserved === undefined ? undefined : this.#listState<T>(key, namespace, reserved)
    if (reserved === undefined || state === undefined) return { status: 'miss' }
    return reserved.outcome === 'reserved'
      ? { status: 'reserved', id: reserved.id, order: reserved.order, ...state }
      : { status: reserved.outcome, ...state }
  }

  /** Gives up a reservation of listReserve(): the entry with that id goes, unless it was settled meanwhile. */
  async listRelease<T> (key: string, id: string, { namespace }: NamespaceOption = {}): Promise<ListLookup<T>> {
    const list = await this.#run(namespace, () => this.#shared.store.listRelease(this.#storeKey(key, namespace), id))
    return this.#listLookup<T>(key, namespace, list, false)
  }

  /** Announces a change of the key (one made without listAdd, such as a delete). */
  async announce (key: string, { namespace }: NamespaceOption = {}): Promise<boolean> {
    const storeKey = this.#storeKey(key, namespace)
    return (await this.#run(namespace, () => this.#shared.store.publish(storeKey, 'changed'))) !== FAILED
  }

  /** The key's announcements, from every process sharing the store. */
  subscribe (key: string, handlers: SubscribeHandlers, { namespace }: NamespaceOption = {}): Subscription {
    return this.#shared.store.subscribe(this.#storeKey(key, namespace), handlers)
  }

  #listLookup<T> (key: string, namespace: string | undefined, list: StoredList | undefined | typeof FAILED, counted: boolean): ListLookup<T> {
    if (list === FAILED) return { status: 'unavailable' }
    const counters = counted ? this.counters(namespace) : undefined
    if (list === undefined || list.building) {
      if (counters !== undefined) counters.misses++
      if (list === undefined) return { status: 'miss' }
    }
    const state = this.#listState<T>(key, namespace, list)
    if (state === undefined) return { status: 'miss' }
    if (counters !== undefined && !list.building) {
      counters.hits++
      counters.byteHits += list.items.reduce((sum, item) => sum + item.value.length, 0)
    }
    return list.building ? { status: 'building', ...state } : { status: 'ready', ...state }
  }

  /** The list with its values decoded; undefined (a miss, counted as an error) when one cannot be. */
  #listState<T> (key: string, namespace: string | undefined, list: StoredList): ListState<T> | undefined {
    try {
      const items = list.items.map(({ id, order, value }) => ({ id, order, value: decode(value) as T }))
      return { items, reserved: list.reserved, version: list.version, ttlMs: list.ttlMs }
    } catch (err) {
      this.counters(namespace).errors++
      this.#shared.log.warn({ err, namespace: namespace ?? this.namespace, key }, 'cached list could not be decoded; treated as a miss')
      return undefined
    }
  }

  async flushAll ({ namespace }: NamespaceOption = {}): Promise<boolean> {
    const ns = encodeURIComponent(namespace ?? this.namespace)
    const flushed = await this.#run(namespace, async () => {
      await this.#shared.store.flush(`${ns}:k:`)
      await this.#shared.store.flush(`${ns}:h:`)
      return true
    })
    return flushed === true
  }

  // Memoization

  /**
   * A function whose results are cached for `ttl` seconds per arguments. Concurrent calls
   * for a key that is not cached run `fn` once in this process, and across processes
   * sharing the store at most once at a time; with `grace`, a stale result is served while
   * one caller refreshes it. When the cache is down, `fn` simply runs.
   */
  memoize<A extends unknown[], R> (fn: (...args: A) => R | Promise<R>, options: MemoizeOptions<A>): Memoized<A, R> {
    const name = typeof options.key === 'string' ? options.key : fn.name
    if (name === '') throw new TypeError('memoize needs a name for an anonymous function: pass options.key')
    ttlMs(options.ttl)
    const custom = typeof options.key === 'function' ? options.key : undefined
    const state: MemoState = {
      name,
      keyOf: (args) => `memo:${name}:${custom === undefined ? createHash('sha256').update(encode(args)).digest('base64url') : custom(...(args as A))}`,
      options: options as MemoizeOptions<unknown[]>
    }
    const memoized = async (...args: A): Promise<R> => await this.#memoCall(state, fn as (...args: unknown[]) => unknown, args) as R
    this.#shared.memos.set(fn, state)
    this.#shared.memos.set(memoized, state)
    return memoized
  }

  /** Forgets the result for these arguments, or with none, every result of the function. */
  async deleteMemoized (fn: Function, ...args: unknown[]): Promise<boolean> {
    const state = this.#shared.memos.get(fn)
    if (state === undefined) throw new TypeError(`${fn.name || 'this function'} was not memoized by this cache`)
    const namespace = state.options.namespace
    if (args.length > 0) return (await this.delete(state.keyOf(args), { namespace })) !== 'failed'
    // Every stored result names the generation it was computed in: a new one retires them all.
    return (await this.incr(`memo:${state.name}`, { initialValue: 0, namespace })) !== undefined
  }

  async #memoCall (state: MemoState, fn: (...args: unknown[]) => unknown, args: unknown[]): Promise<unknown> {
    const { namespace } = state.options
    const key = state.keyOf(args)
    // The generation is only a counter read along: it is not a hit or a miss of the memo.
    const [entry, generation] = await this.#read([key, `memo:${state.name}`], namespace, 1)
    if (entry === FAILED || generation === FAILED) return await fn(...args)
    const current = Number(generation?.value ?? 0)
    // A computation started before deleteMemoized() is never joined by a call made after it.
    const flightKey = `${namespace ?? this.namespace}\u0000${key}\u0000${current}`
    const memo = entry?.value as MemoEntry | undefined
    if (memo !== undefined && memo.g === current) {
      if (Date.now() < memo.f) return memo.v
      if (Date.now() < memo.f + (state.options.grace ?? 0) * 1000) {
        this.#flight(flightKey, () => this.#compute(state, fn, args, key, current)).catch((err: unknown) => {
          this.#shared.log.warn({ err, memo: state.name }, 'refreshing a memoized result failed; the stale one is served')
        })
        return memo.v
      }
    }
    return await this.#flight(flightKey, () => this.#compute(state, fn, args, key, current))
  }

  #flight (flightKey: string, run: () => Promise<unknown>): Promise<unknown> {
    const running = this.#shared.inFlight.get(flightKey)
    if (running !== undefined) return running
    const flight = run().finally(() => this.#shared.inFlight.delete(flightKey))
    this.#shared.inFlight.set(flightKey, flight)
    return flight
  }

  /** Runs fn under a short lock, so that only one process computes the key at a time. */
  async #compute (state: MemoState, fn: (...args: unknown[]) => unknown, args: unknown[], key: string, generation: number): Promise<unknown> {
    const { namespace, ttl, grace = 0, lockSeconds = 10 } = state.options
    const lockKey = `${key}:lock:${generation}`
    const lockMs = lockSeconds * 1000
    const acquiredAt = Date.now()
    const lock = await this.#run(namespace, () => this.#shared.store.write('add', [{
      key: this.#storeKey(lockKey, namespace), value: '1', casToken: randomUUID(), ttlMs: lockMs
    }]))
    if (lock !== FAILED && lock[0] === false) {
      // Another process computes it: wait for its result, until its lock goes (done, failed or expired).
      const deadline = Date.now() + lockMs
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        const [entry, held] = await this.#read([key, lockKey], namespace, 0)
        if (entry === FAILED || held === FAILED) break
        const memo = entry?.value as MemoEntry | undefined
        if (memo !== undefined && memo.g === generation && Date.now() < memo.f) return memo.v
        if (held === undefined) break
      }
    }
    try {
      const value = await fn(...args)
      // ttl 0 is memcache's "no expiry": fresh for good, and kept for good.
      const memo: MemoEntry = { v: value, g: generation, f: ttl === 0 ? Number.MAX_SAFE_INTEGER : Date.now() + ttlMs(ttl) }
      try {
        await this.set(key, memo, { ttl: ttl === 0 ? 0 : ttl + grace, namespace })
      } catch (err) {
        this.#shared.log.warn({ err, memo: state.name }, 'a memoized result could not be cached; it is returned uncached')
      }
      return value
    } finally {
      // A lock that has expired may be someone else's by now: leave it to its own expiry.
      if (lock !== FAILED && lock[0] === true && Date.now() - acquiredAt < lockMs - 100) await this.delete(lockKey, { namespace })
    }
  }

  #statsKey (namespace: string): string {
    return `${encodeURIComponent(namespace)}:stats`
  }

  /**
   * The key in the store: the namespace, escaped so that no namespace can reach into
   * another, then `k:` and the key, or `h:` and its SHA-256 when it is longer than memcache allows.
   */
  #storeKey (key: string, namespace = this.namespace): string {
    checkKey(key)
    checkKey(namespace, 'namespace')
    // UTF-8 (Redis' bytes, and the hash's) writes every lone surrogate as U+FFFD: such keys would collide.
    if (LONE_SURROGATE.test(key)) throw new TypeError(`cache key "${key.slice(0, 100)}" is not well-formed Unicode (a lone surrogate)`)
    const ns = encodeURIComponent(namespace)
    if (Buffer.byteLength(key) <= MAX_KEY_BYTES) return `${ns}:k:${key}`
    return `${ns}:h:${createHash('sha256').update(key).digest('base64url')}`
  }

  #encode (key: string, value: unknown): string {
    const text = encode(value)
    const bytes = typeof value === 'string' ? Buffer.byteLength(value) : Buffer.isBuffer(value) ? value.length : Buffer.byteLength(text)
    if (bytes > MAX_VALUE_BYTES) {
      throw new ValueTooLargeError(`the value for cache key "${key.slice(0, 100)}" is ${bytes} bytes; the limit is ${MAX_VALUE_BYTES}`)
    }
    return text
  }

  /** Reads the keys; only the first `counted` of them are hits or misses in the stats, the rest are bookkeeping. */
  async #read (keys: readonly string[], namespace: string | undefined, counted = keys.length, from = this.reads): Promise<Array<{ value: unknown, casToken: string } | undefined | typeof FAILED>> {
    const storeKeys = keys.map((key) => this.#storeKey(key, namespace))
    const entries = await this.#readOnce(namespace, (store) => store.get(storeKeys), from)
    if (entries === FAILED) return keys.map(() => FAILED)
    const counters = this.counters(namespace)
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
          this.#shared.log.warn({ err, namespace: namespace ?? this.namespace, key: keys[i] }, 'cache value could not be decoded; treated as a miss')
        }
      }
      if (counts) counters.misses++
      return undefined
    })
  }

  async #writeMulti (mode: WriteMode, mapping: Record<string, unknown>, { ttl = 0, keyPrefix = '', namespace }: WriteOptions & PrefixOption): Promise<string[]> {
    const keys = Object.keys(mapping)
    // Validate everything before anything is written.
    const life = memcacheTtlMs(ttl)
    const entries = prefixed(keys, keyPrefix).map((key, i) => ({
      key: this.#storeKey(key, namespace),
      value: this.#encode(key, mapping[keys[i]!]),
      casToken: randomUUID(),
      ttlMs: life
    }))
    if (entries.length === 0) return []
    const stored = await this.#run(namespace, () => this.#shared.store.write(mode, entries))
    return keys.filter((_key, i) => stored === FAILED || !stored[i])
  }

  async #deleteAll (keys: readonly string[], { lockSeconds = 0, namespace }: DeleteOptions): Promise<Array<'deleted' | 'missing' | 'failed'>> {
    const lock = memcacheTtlMs(lockSeconds)
    const storeKeys = keys.map((key) => this.#storeKey(key, namespace))
    if (keys.length === 0) return []
    const existed = await this.#run(namespace, () => this.#shared.store.delete(storeKeys, lock))
    return keys.map((_key, i) => existed === FAILED ? 'failed' : existed[i] === true ? 'deleted' : 'missing')
  }

  async #offset (key: string, delta: bigint, { initialValue, namespace }: Omit<OffsetOptions, 'delta'>, kind: 'incr' | 'decr' | 'offset'): Promise<Counter | undefined> {
    if (kind !== 'offset' && (kind === 'incr' ? delta < 0n : delta > 0n)) throw new RangeError(`${kind} takes a delta >= 0`)
    const initial = initialValue === undefined ? undefined : toBigInt(initialValue, 'initialValue')
    if (initial !== undefined && initial < 0n) throw new RangeError('initialValue must be >= 0')
    if (delta > MAX_COUNTER || -delta > MAX_COUNTER || (initial !== undefined && initial + delta > MAX_COUNTER)) {
      throw new CounterOverflowError(`${kind} of "${key}" would pass 2^63 - 1`)
    }
    const storeKey = this.#storeKey(key, namespace)
    const value = await this.#run(namespace, () => this.#shared.store.incr(storeKey, delta, initial, randomUUID()))
    return value === FAILED || value === undefined ? undefined : decode<Counter>(value)
  }

  /** A read from the replica when this view reads there and it answers, else from the primary. */
  async #readOnce<R> (namespace: string | undefined, read: (store: Store) => Promise<R>, from = this.reads): Promise<R | typeof FAILED> {
    const replica = from === 'replica' ? this.#shared.replica : undefined
    if (replica !== undefined) {
      const result = await this.#run(namespace, async () => await read(replica.store), replica)
      if (result !== FAILED) return result
    }
    return await this.#run(namespace, async () => await read(this.#shared.store))
  }

  async #run<R> (namespace: string | undefined, operation: () => Promise<R>, { store, breaker }: Guarded = this.#shared): Promise<R | typeof FAILED> {
    const { log } = this.#shared
    const where = { namespace: namespace ?? this.namespace, ...(store === this.#shared.store ? {} : { store: 'replica' }) }
    // A disconnected client fails at once; the client's own state change is logged by its owner.
    if (!store.connected || !breaker.allow()) return FAILED
    try {
      const result = await operation()
      const before = breaker.state
      breaker.success()
      if (before !== 'closed') log.info(where, 'cache answering again; circuit closed')
      return result
    } catch (err) {
      if (err instanceof CounterOverflowError) {
        // The store answered; the caller asked for something a counter cannot hold.
        breaker.success()
        throw err
      }
      this.counters(namespace).errors++
      const before = breaker.state
      breaker.failure()
      if (before === 'closed' && breaker.state === 'open') {
        log.warn({ err, ...where }, 'cache failing; circuit open, serving without it')
      } else {
        log.debug({ err, ...where }, 'cache command failed')
      }
      return FAILED
    }
  }
}

export function createCache (options: CacheOptions): Cache {
  return new Cache(options)
}
