import { createHash } from 'node:crypto'

/** What a store keeps per key: the serialized value and the token that changes with every write. */
export interface StoredEntry {
  value: string
  casToken: string
}

export type WriteMode = 'set' | 'add' | 'replace'

/** What peek() finds under a key: a value or a delete lock, with its timestamps (epoch milliseconds). */
export interface PeekedEntry {
  /** Absent while the key is only a delete lock. */
  value?: string
  /** 0 when it never expires. */
  expiresAtMs: number
  /** The last read or write; 0 when the store cannot tell (Redis under an LFU eviction policy). */
  lastAccessMs: number
  /** Until when the delete lock holds; 0 when the key holds a value. */
  lockedUntilMs: number
}

export interface StoreWrite {
  key: string
  value: string
  casToken: string
  /** 0 keeps the value until it is evicted or deleted; below 0 it is expired as soon as written. */
  ttlMs: number
}

/** A counter would pass 2^63 - 1: memcache would wrap around; we refuse. */
export class CounterOverflowError extends RangeError {
  override name = 'CounterOverflowError'
}

/** The largest value a counter may hold: a signed 64-bit integer, as Redis keeps it. */
export const MAX_COUNTER = 2n ** 63n - 1n

/** A counter as stored: its digits, and "n" for a bigint. */
export const COUNTER = /^(\d+)(n?)$/

/**
 * A backend for the cache, described by what it can do: every store keeps values
 * (KeyValueStore) and counters (CounterStore), which the memcache API needs; bounded lists
 * (ListStore) and announcements (PubSubStore) are offered by the stores that can. Keys arrive
 * already namespaced and values already serialized; every method is atomic per key, also
 * against other processes sharing the backend. Failures throw: the cache's runner turns them
 * into misses. Each capability has its contract suite (the package's `contract` export).
 */
export interface KeyValueStore {
  /** The backend's name, for logs and health pages. */
  readonly kind: string
  /** Whether a command can be sent now, known without a round trip. */
  readonly connected: boolean
  /** The value of each key, in order; undefined where missing. A read, and the fastest one. */
  get (keys: readonly string[]): Promise<Array<string | undefined>>
  /**
   * The value of one key; null or undefined where missing. The read of every get(): a store
   * answers with its client's own promise, adding no step of its own.
   */
  getOne (key: string): Promise<string | null | undefined>
  /** get() with each value's token for cas(). */
  gets (keys: readonly string[]): Promise<Array<StoredEntry | undefined>>
  /**
   * The entries with their timestamps, delete locks included, without counting as a use:
   * the entries keep their place in the eviction order.
   */
  peek (keys: readonly string[]): Promise<Array<PeekedEntry | undefined>>
  /** Writes each entry if the mode allows (add: key absent and not locked; replace: key present); true where stored. */
  write (mode: WriteMode, entries: readonly StoreWrite[]): Promise<boolean[]>
  /** Stores the value only if the key's token is still the expected one. */
  cas (entry: StoreWrite, expectedToken: string): Promise<boolean>
  /**
   * True where a value or a delete lock existed. With lockMs > 0 the key is (again) locked
   * for that long: add and replace fail; with 0 a lock goes too.
   */
  delete (keys: readonly string[], lockMs: number): Promise<boolean[]>
  /** Removes every value whose key starts with the prefix. */
  flush (prefix: string): Promise<void>
  /** Milliseconds the key has left, with Redis' PTTL answers: -1 for no expiry, -2 when missing. */
  pttl (key: string): Promise<number>
  /** What lives under the prefixes: counted up to `limit` keys, sizes and ages from a sample. */
  census (prefixes: readonly string[], limit: number): Promise<Census>
}

export interface CounterStore {
  /**
   * Adds delta (negative to decrement) to a counter, flooring at 0. A counter is a stored
   * value of bare decimal digits, with an "n" after them for a bigint (which it keeps), up to
   * MAX_COUNTER; anything else (a negative number, a larger one, no integer) is left as it is.
   * A missing (or delete-locked) key is created from initial when one is given. Returns the
   * new value as stored, or undefined when the key is missing without an initial value or
   * holds no counter. Throws a CounterOverflowError, changing nothing, past MAX_COUNTER.
   */
  incr (key: string, delta: bigint, initial: bigint | undefined, casToken: string): Promise<string | undefined>
  /** Adds to named counters kept under each key, in one round trip. */
  addCounters (batch: ReadonlyMap<string, Readonly<Record<string, number>>>): Promise<void>
  readCounters (key: string): Promise<Record<string, number>>
}

/** Bounded lists, each change announced on the list's key (so a store with lists publishes too). */
export interface ListStore {
  /**
   * The list at key; undefined when the key holds none. Every list operation treats a list
   * holding a reservation past its time as gone: it deletes it and announces that on the key.
   */
  listGet (key: string): Promise<StoredList | undefined>
  /**
   * Starts building the list at key: when the key holds no list, an empty one marked
   * building is created that lives lockMs, and `began` is true. Otherwise the list as it is.
   */
  listBegin (key: string, lockMs: number): Promise<StoredList & { began: boolean }>
  /**
   * Merges items into the list at key, keeps the newest `limit` settled ones, and announces
   * the new version on the key. An id already there is kept as it is, unless it is reserved:
   * the item added then takes its place. With `completeTtlMs` the list is marked complete and
   * given that TTL (0: none). Undefined, and nothing written, when the key holds no list.
   */
  listAdd (key: string, items: readonly ListItem[], limit: number, completeTtlMs?: number): Promise<StoredList | undefined>
  /** Reserves the head of the list for an item, or says why not: see ListReservation. */
  listReserve (key: string, item: ListReservationRequest, limit: number, reservedMs: number): Promise<ListReservation | undefined>
  /** Removes the reserved item with that id (a settled one stays). Undefined when the key holds no list. */
  listRelease (key: string, id: string): Promise<StoredList | undefined>
}

/** Messages on channels, heard by every process sharing the backend. */
export interface PubSubStore {
  /** Publishes a message on the channel. */
  publish (channel: string, message: string): Promise<void>
  subscribe (channel: string, handlers: SubscribeHandlers): Subscription
}

/** What the memcache API needs of a store; lists and announcements where the store offers them. */
export type CacheStore = KeyValueStore & CounterStore & Partial<ListStore & PubSubStore>

/** A store with every capability, as the memory and Redis stores are. */
export type Store = KeyValueStore & CounterStore & ListStore & PubSubStore

/** The store, if it keeps lists and announces their changes; a clear error if not. */
export function withLists (store: CacheStore): CacheStore & ListStore & PubSubStore {
  if (typeof store.listGet !== 'function' || typeof store.publish !== 'function' || typeof store.subscribe !== 'function') {
    throw new TypeError('this cache\'s store keeps no lists or announcements (ListStore and PubSubStore)')
  }
  return store as CacheStore & ListStore & PubSubStore
}

/**
 * An item of a bounded list: one per id, newest first by `order`, then by id (compared byte by
 * byte, descending).
 */
export interface ListItem {
  id: string
  /** An integer, such as epoch milliseconds. */
  order: number
  /** Serialized. */
  value: string
}

/**
 * The reservations in a list (listReserve), as far as a reader needs them: they are not settled
 * items, are not counted in the limit, and are not listed, so that a reply does not grow with the
 * writes in flight.
 */
export interface ListReservations {
  count: number
  /** Milliseconds left before the soonest to run out is given up on; absent without reservations. */
  soonestMs?: number
  /** Whether the newest settled item's value is also reserved above it (its writer has not settled it yet). */
  newestSettled: boolean
}

/** How long a list's key outlives the list's own expiry, so that a rebuild finds the reservations in it. */
export const LIST_KEEP_MS = 120_000

/** A bounded list as stored: its settled items, its reservations, whether it is still being built, and its version. */
export interface StoredList {
  items: ListItem[]
  reserved: ListReservations
  /** Started by listBegin() and not yet completed: the items may lack older ones. */
  building: boolean
  /** Grows with every change of the list, also across its deletion and re-creation. */
  version: number
  /** Milliseconds it has left; -1 for no expiry. */
  ttlMs: number
}

export interface ListReservationRequest {
  /** Serialized; compared with the items' values as they are stored. */
  value: string
  /** Names the item together with the id of the newest settled item: see listItemId(). */
  seed: string
  /** At least this order; the store raises it above the head's. */
  order: number
}

/**
 * What listReserve() decided, atomically against every other process:
 * - `reserved`: the item is now the head, reserved under `id` with `order`;
 * - `same`: the newest settled item has this value and none of it is reserved above: nothing to add;
 * - `reserved-already`: an item of this value is reserved above the newest settled one: its writer has not said how it ended;
 * - `building`: the list is being built (listBegin), and cannot decide yet.
 */
export type ListReservation = StoredList & (
  | { outcome: 'reserved', id: string, order: number }
  | { outcome: 'same' | 'reserved-already' | 'building' }
)

/** Messages on a channel, from every process sharing the store. */
export interface Subscription {
  /** Whether messages arrive now; while false some may be lost. */
  readonly live: boolean
  close (): Promise<void>
}

export interface SubscribeHandlers {
  message: (message: string) => void
  /** Messages may have been missed (a reconnect): whatever they would have changed is suspect. */
  reset: () => void
}

export interface Census {
  items: number
  bytes: number
  /** Seconds since the least recently used item was last read or written. */
  oldestItemAge: number
  /** False when counting stopped at the limit: items and bytes are then lower bounds. */
  complete: boolean
}

/**
 * The id of an item reserved after the settled item `afterId` (empty for a list without one): every
 * process that decides the same item after the same settled item names it alike, and so stores it
 * once. Not after a reservation above it, which may never be stored: a retry after a write given up
 * on, or one decided without the list after the same stored item, then names the same item. SHA-1,
 * since it is what Redis scripts can compute; it names, it does not protect.
 */
export function listItemId (afterId: string, seed: string): string {
  return createHash('sha1').update(`${afterId}\n${seed}`).digest('hex')
}
