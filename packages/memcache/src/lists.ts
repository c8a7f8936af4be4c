import { decode } from './codec.js'
import type { CacheCore } from './core.js'
import { encodeValue, storeKey, type NamespaceOption } from './keys.js'
import { FAILED, type Failed } from './runner.js'
import { withLists, type ListReservations, type ListStore, type PubSubStore, type StoredList, type SubscribeHandlers, type Subscription } from './stores/store.js'
import { ttlMs } from './ttl.js'

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
 * - `reserved`: the entry is now the list's head, reserved under `id` (named after the newest
 *   settled entry, see listItemId) with `order` (raised above the head's): settle it with listAdd(), or
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

export interface ListAddOptions extends NamespaceOption {
  limit: number
  complete?: { ttl: number }
}

export interface ListReserveOptions extends NamespaceOption {
  limit: number
  reserveSeconds: number
}

/**
 * Bounded lists (not in memcache): kept newest first by order, one item per id, changed
 * atomically by any number of processes, each change announced on the key's channel (the bus).
 */
export class Lists {
  constructor (readonly core: CacheCore) {}

  /**
   * Checked before the runner is called, as keys and times are: a store without lists, a bad
   * key or time is the caller's mistake, thrown as it is, and never a store failure.
   */
  get #store (): ListStore & PubSubStore {
    return withLists(this.core.store)
  }

  /** The list at key: ready, still being built (begin), missing, or the store unavailable. */
  async get<T> (key: string, namespace: string): Promise<ListLookup<T>> {
    const [store, at] = [this.#store, storeKey(key, namespace)]
    this.core.sample(namespace, key)
    const list = await this.core.runner.run(namespace, () => store.listGet(at))
    return this.#lookup<T>(key, namespace, list, true)
  }

  async begin<T> (key: string, namespace: string, lockSeconds: number): Promise<ListLookup<T> & { began?: boolean }> {
    const [store, at] = [this.#store, storeKey(key, namespace)]
    this.core.sample(namespace, key)
    const lockMs = ttlMs(lockSeconds)
    const list = await this.core.runner.run(namespace, () => store.listBegin(at, lockMs))
    const lookup = this.#lookup<T>(key, namespace, list, false)
    return list === FAILED ? lookup : { ...lookup, began: list.began }
  }

  async add<T> (key: string, namespace: string, entries: ReadonlyArray<ListEntry<T>>, { limit, complete }: ListAddOptions): Promise<ListLookup<T>> {
    const items = entries.map(({ id, order, value }) => ({ id, order, value: encodeValue(key, value) }))
    const completeTtlMs = complete === undefined ? undefined : ttlMs(complete.ttl)
    const [store, at] = [this.#store, storeKey(key, namespace)]
    this.core.sample(namespace, key)
    const list = await this.core.runner.run(namespace, () => store.listAdd(at, items, limit, completeTtlMs))
    return this.#lookup<T>(key, namespace, list, false)
  }

  async reserve<T> (key: string, namespace: string, { value, seed, order }: { value: T, seed: string, order: number }, { limit, reserveSeconds }: ListReserveOptions): Promise<ListReservationLookup<T>> {
    const request = { value: encodeValue(key, value), seed, order }
    const [store, at] = [this.#store, storeKey(key, namespace)]
    this.core.sample(namespace, key)
    const reservedMs = ttlMs(reserveSeconds)
    const reserved = await this.core.runner.run(namespace, () => store.listReserve(at, request, limit, reservedMs))
    if (reserved === FAILED) return { status: 'unavailable' }
    const counters = this.core.stats.count(namespace)
    if (reserved === undefined || reserved.outcome === 'building') counters.misses++
    if (reserved?.outcome === 'same') counters.hits++
    const state = reserved === undefined ? undefined : this.#state<T>(key, namespace, reserved)
    if (reserved === undefined || state === undefined) return { status: 'miss' }
    return reserved.outcome === 'reserved'
      ? { status: 'reserved', id: reserved.id, order: reserved.order, ...state }
      : { status: reserved.outcome, ...state }
  }

  async release<T> (key: string, namespace: string, id: string): Promise<ListLookup<T>> {
    const [store, at] = [this.#store, storeKey(key, namespace)]
    this.core.sample(namespace, key)
    const list = await this.core.runner.run(namespace, () => store.listRelease(at, id))
    return this.#lookup<T>(key, namespace, list, false)
  }

  async announce (key: string, namespace: string): Promise<boolean> {
    const [store, channel] = [this.#store, storeKey(key, namespace)]
    return (await this.core.runner.run(namespace, () => store.publish(channel, 'changed'))) !== FAILED
  }

  subscribe (key: string, namespace: string, handlers: SubscribeHandlers): Subscription {
    return this.#store.subscribe(storeKey(key, namespace), handlers)
  }

  #lookup<T> (key: string, namespace: string, list: StoredList | undefined | Failed, counted: boolean): ListLookup<T> {
    if (list === FAILED) return { status: 'unavailable' }
    const counters = counted ? this.core.stats.count(namespace) : undefined
    if (list === undefined || list.building) {
      if (counters !== undefined) counters.misses++
      if (list === undefined) return { status: 'miss' }
    }
    const state = this.#state<T>(key, namespace, list)
    if (state === undefined) return { status: 'miss' }
    if (counters !== undefined && !list.building) {
      counters.hits++
      counters.byteHits += list.items.reduce((sum, item) => sum + item.value.length, 0)
    }
    return list.building ? { status: 'building', ...state } : { status: 'ready', ...state }
  }

  /** The list with its values decoded; undefined (a miss, counted as an error) when one cannot be. */
  #state<T> (key: string, namespace: string, list: StoredList): ListState<T> | undefined {
    try {
      const items = list.items.map(({ id, order, value }) => ({ id, order, value: decode(value) as T }))
      return { items, reserved: list.reserved, version: list.version, ttlMs: list.ttlMs }
    } catch (err) {
      this.core.stats.count(namespace).errors++
      this.core.log.warn({ err, namespace, key }, 'cached list could not be decoded; treated as a miss')
      return undefined
    }
  }
}
