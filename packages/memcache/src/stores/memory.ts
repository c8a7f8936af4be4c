import { EventEmitter } from 'node:events'
import {
  COUNTER, CounterOverflowError, LIST_KEEP_MS, MAX_COUNTER, listItemId, type Census, type PeekedEntry, type ListItem, type ListReservation, type ListReservationRequest, type Store, type StoredEntry, type StoredList,
  type StoreWrite, type SubscribeHandlers, type Subscription, type WriteMode
} from './store.js'

interface Entry {
  /** Absent while the key is only a delete lock. */
  value?: string
  casToken?: string
  /** Epoch milliseconds; 0 means no expiry. */
  expiresAt: number
  /** Epoch milliseconds of the last read or write. */
  usedAt: number
  bytes: number
  /** Present when the key holds a list; a reserved item holds `reservedUntil`. */
  list?: MemoryList
}

/**
 * As the Redis store keeps it: the list expires by `expiresAt` (0: never), not with its entry,
 * so that a rebuild finds the reservations still running in it; `givenUp` once one ran out.
 */
interface MemoryList {
  items: MemoryListItem[]
  building: boolean
  version: number
  expiresAt: number
  givenUp: boolean
}

type MemoryListItem = ListItem & { reservedUntil?: number }

/** Newest first: by order, then by id descending (UTF-16 order, the same as bytes for ASCII ids). */
function newer (a: MemoryListItem, b: MemoryListItem): boolean {
  return a.order !== b.order ? a.order > b.order : a.id > b.id
}

function insert (list: MemoryListItem[], item: MemoryListItem): void {
  const at = list.findIndex((have) => newer(item, have))
  list.splice(at === -1 ? list.length : at, 0, item)
}

/** Keeps the newest `limit` settled items and the reservations above the last of them. */
function trim (list: MemoryListItem[], limit: number): MemoryListItem[] {
  const kept: MemoryListItem[] = []
  let settled = 0
  for (const item of list) {
    if (settled === limit) break
    kept.push(item)
    if (item.reservedUntil === undefined) settled++
  }
  return kept
}

export interface MemoryStoreOptions {
  /** Upper bound of keys plus values, in bytes; least recently used entries go first. */
  maxBytes?: number
  now?: () => number
}

/** An in-process store: the embedded default when no Redis is configured, and a fast first tier. */
export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly connected = true
  readonly #entries = new Map<string, Entry>()
  readonly #counters = new Map<string, Record<string, number>>()
  readonly #maxBytes: number
  readonly #now: () => number
  #bytes = 0
  #version = 0
  readonly #channels = new EventEmitter().setMaxListeners(0)

  constructor ({ maxBytes = 64 * 1024 * 1024, now = Date.now }: MemoryStoreOptions = {}) {
    this.#maxBytes = maxBytes
    this.#now = now
  }

  get bytes (): number {
    return this.#bytes
  }

  async get (keys: readonly string[]): Promise<Array<string | undefined>> {
    return (await this.gets(keys)).map((entry) => entry?.value)
  }

  async getOne (key: string): Promise<string | undefined> {
    return (await this.gets([key]))[0]?.value
  }

  async gets (keys: readonly string[]): Promise<Array<StoredEntry | undefined>> {
    return keys.map((key) => {
      const entry = this.#live(key)
      if (entry?.value === undefined) return undefined
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.#entries.delete(key)
      this.#entries.set(key, entry)
      entry.usedAt = this.#now()
      return { value: entry.value, casToken: entry.casToken! }
    })
  }

  async peek (keys: readonly string[]): Promise<Array<PeekedEntry | undefined>> {
    return keys.map((key) => {
      const entry = this.#live(key)
      if (entry === undefined) return undefined
      const times = { expiresAtMs: entry.expiresAt, lastAccessMs: entry.usedAt }
      return entry.value === undefined ? { ...times, lockedUntilMs: entry.expiresAt } : { value: entry.value, ...times, lockedUntilMs: 0 }
    })
  }

  async write (mode: WriteMode, entries: readonly StoreWrite[]): Promise<boolean[]> {
    return entries.map((entry) => {
      const current = this.#live(entry.key)
      if (mode === 'add' && current !== undefined) return false
      if (mode === 'replace' && current?.value === undefined) return false
      return this.#put(entry.key, entry)
    })
  }

  async cas (entry: StoreWrite, expectedToken: string): Promise<boolean> {
    const current = this.#live(entry.key)
    if (current?.value === undefined || current.casToken !== expectedToken) return false
    return this.#put(entry.key, entry)
  }

  async delete (keys: readonly string[], lockMs: number): Promise<boolean[]> {
    return keys.map((key) => {
      // A delete lock is deleted too, and locked again with the new time: the last delete wins.
      const current = this.#live(key)
      if (current === undefined) return false
      this.#remove(key, current)
      if (lockMs > 0) this.#insert(key, { expiresAt: this.#now() + lockMs, usedAt: this.#now(), bytes: Buffer.byteLength(key) })
      return true
    })
  }

  async incr (key: string, delta: bigint, initial: bigint | undefined, casToken: string): Promise<string | undefined> {
    const current = this.#live(key)
    let base: bigint
    let suffix = ''
    if (current?.value !== undefined) {
      const counter = COUNTER.exec(current.value)
      if (counter === null) return undefined
      base = BigInt(counter[1]!)
      suffix = counter[2]!
      if (base > MAX_COUNTER) return undefined
    } else if (initial !== undefined) {
      base = initial
    } else {
      return undefined
    }
    let next = base + delta
    if (next > MAX_COUNTER) throw new CounterOverflowError(`incrementing ${key} would pass 2^63 - 1`)
    if (next < 0n) next = 0n
    const value = `${next}${suffix}`
    // A counter keeps its expiry; one created from an initial value has none.
    const ttlMs = current?.value !== undefined && current.expiresAt !== 0 ? Math.max(1, current.expiresAt - this.#now()) : 0
    this.#put(key, { key, value, casToken, ttlMs })
    return value
  }

  async flush (prefix: string): Promise<void> {
    for (const [key, entry] of this.#entries) {
      if (key.startsWith(prefix)) this.#remove(key, entry)
    }
  }

  async pttl (key: string): Promise<number> {
    const entry = this.#live(key)
    if (entry === undefined) return -2
    return entry.expiresAt === 0 ? -1 : entry.expiresAt - this.#now()
  }

  async addCounters (batch: ReadonlyMap<string, Readonly<Record<string, number>>>): Promise<void> {
    for (const [key, deltas] of batch) {
      const counters = this.#counters.get(key) ?? {}
      for (const [name, delta] of Object.entries(deltas)) counters[name] = (counters[name] ?? 0) + delta
      this.#counters.set(key, counters)
    }
  }

  async readCounters (key: string): Promise<Record<string, number>> {
    return { ...this.#counters.get(key) }
  }

  async census (prefixes: readonly string[], limit: number): Promise<Census> {
    const census: Census = { items: 0, bytes: 0, oldestItemAge: 0, complete: true }
    const now = this.#now()
    for (const [key, entry] of this.#entries) {
      if (entry.value === undefined || !prefixes.some((prefix) => key.startsWith(prefix))) continue
      if (entry.expiresAt !== 0 && entry.expiresAt <= now) continue
      if (census.items === limit) {
        census.complete = false
        break
      }
      census.items++
      census.bytes += entry.bytes
      census.oldestItemAge = Math.max(census.oldestItemAge, Math.floor((now - entry.usedAt) / 1000))
    }
    return census
  }

  async listGet (key: string): Promise<StoredList | undefined> {
    const { entry, live } = this.#loadList(key)
    return live ? this.#listOf(entry!) : undefined
  }

  async listBegin (key: string, lockMs: number): Promise<StoredList & { began: boolean }> {
    const { entry, live } = this.#loadList(key)
    if (live) return { ...this.#listOf(entry!), began: false }
    // A list that expired or was given up is built anew with the reservations still running in it.
    const now = this.#now()
    const kept = (entry?.list?.items ?? []).filter((item) => item.reservedUntil !== undefined && item.reservedUntil > now)
    const created = this.#putList(key, kept, { building: true, expiresAt: now + lockMs })
    return { ...this.#listOf(created), began: true }
  }

  async listAdd (key: string, items: readonly ListItem[], limit: number, completeTtlMs?: number): Promise<StoredList | undefined> {
    const { entry, live } = this.#loadList(key)
    if (!live) {
      // Settled for good: a rebuild must not take it for a write still in flight.
      const list = entry?.list
      if (list !== undefined) list.items = list.items.filter((have) => have.reservedUntil === undefined || !items.some((item) => item.id === have.id))
      return undefined
    }
    const { items: have, building, expiresAt } = entry!.list!
    const list = [...have]
    for (const { id, order, value } of items) {
      const found = list.findIndex((item) => item.id === id)
      if (found !== -1 && list[found]!.reservedUntil === undefined) continue
      if (found !== -1) list.splice(found, 1)
      insert(list, { id, order, value })
    }
    const complete = completeTtlMs !== undefined
    const updated = this.#putList(key, trim(list, limit), {
      building: complete ? false : building,
      expiresAt: complete ? (completeTtlMs === 0 ? 0 : this.#now() + completeTtlMs) : expiresAt
    })
    this.#channels.emit(key, String(updated.list!.version))
    return this.#listOf(updated)
  }

  async listReserve (key: string, { value, seed, order }: ListReservationRequest, limit: number, reservedMs: number): Promise<ListReservation | undefined> {
    const { entry, live } = this.#loadList(key)
    if (!live) return undefined
    const { items, building, expiresAt } = entry!.list!
    if (building) {
      // Carried into the list being built: that write is still in flight.
      const inFlight = items.some((item) => item.reservedUntil !== undefined && item.value === value)
      return { ...this.#listOf(entry!), outcome: inFlight ? 'reserved-already' : 'building' }
    }
    // The newest settled item: a new entry is named after it (listItemId), not after a reservation.
    let after: MemoryListItem | undefined
    for (const item of items) {
      if (item.reservedUntil === undefined) {
        if (item.value === value) return { ...this.#listOf(entry!), outcome: 'same' }
        after = item
        break
      }
      if (item.value === value) return { ...this.#listOf(entry!), outcome: 'reserved-already' }
    }
    const head = items[0]
    const id = listItemId(after?.id ?? '', seed)
    const reserved = { id, order: head !== undefined && order <= head.order ? head.order + 1 : order, value, reservedUntil: this.#now() + reservedMs }
    const updated = this.#putList(key, trim([reserved, ...items], limit), { building: false, expiresAt })
    return { ...this.#listOf(updated), outcome: 'reserved', id, order: reserved.order }
  }

  async listRelease (key: string, id: string): Promise<StoredList | undefined> {
    const { entry, live } = this.#loadList(key)
    const list = entry?.list
    if (list === undefined) return undefined
    const at = list.items.findIndex((item) => item.id === id && item.reservedUntil !== undefined)
    if (!live) {
      if (at !== -1) list.items.splice(at, 1)
      return undefined
    }
    if (at === -1) return this.#listOf(entry!)
    return this.#listOf(this.#putList(key, list.items.filter((_, j) => j !== at), list))
  }

  async publish (channel: string, message: string): Promise<void> {
    this.#channels.emit(channel, message)
  }

  /** One process: every message arrives, always. */
  subscribe (channel: string, handlers: SubscribeHandlers): Subscription {
    const listener = (message: string) => handlers.message(message)
    this.#channels.on(channel, listener)
    return { live: true, close: async () => { this.#channels.off(channel, listener) } }
  }

  /** The settled items, and of the reservations only what callers decide by (see ListReservations). */
  #listOf (entry: Entry): StoredList {
    const { items, building, version, expiresAt } = entry.list!
    const now = this.#now()
    const settled: ListItem[] = []
    const above = new Set<string>()
    let count = 0
    let soonest = Infinity
    let newestSettled = false
    for (const { id, order, value, reservedUntil } of items) {
      if (reservedUntil !== undefined) {
        count++
        soonest = Math.min(soonest, reservedUntil)
        if (settled.length === 0) above.add(value)
        continue
      }
      if (settled.length === 0) newestSettled = above.has(value)
      settled.push({ id, order, value })
    }
    return {
      items: settled,
      building,
      version,
      ttlMs: expiresAt === 0 ? -1 : expiresAt - now,
      reserved: count === 0 ? { count, newestSettled } : { count, soonestMs: soonest - now, newestSettled }
    }
  }

  /**
   * The entry holding a list at key, if any, and whether the list is live: not expired, not
   * given up. A reservation past its time belongs to a writer that never said how its write
   * ended: nobody knows what the list lacks, so it is given up, and that announced once.
   */
  #loadList (key: string): { entry: Entry | undefined, live: boolean } {
    const entry = this.#live(key)
    const list = entry?.list
    if (list === undefined) return { entry: undefined, live: false }
    const now = this.#now()
    if (list.givenUp || (list.expiresAt !== 0 && list.expiresAt <= now)) return { entry, live: false }
    if (list.items.some((item) => item.reservedUntil !== undefined && item.reservedUntil <= now)) {
      list.givenUp = true
      this.#channels.emit(key, 'dropped')
      return { entry, live: false }
    }
    return { entry, live: true }
  }

  #putList (key: string, items: MemoryListItem[], { building, expiresAt }: { building: boolean, expiresAt: number }): Entry {
    const previous = this.#entries.get(key)
    if (previous !== undefined) this.#remove(key, previous)
    this.#version = Math.max(this.#version + 1, this.#now() * 1000)
    const value = JSON.stringify(items)
    const entry: Entry = {
      value,
      casToken: '',
      // The entry outlives the list, as the Redis key does.
      expiresAt: expiresAt === 0 ? 0 : expiresAt + LIST_KEEP_MS,
      usedAt: this.#now(),
      bytes: Buffer.byteLength(key) + Buffer.byteLength(value),
      list: { items, building, version: this.#version, expiresAt, givenUp: false }
    }
    this.#insert(key, entry)
    return entry
  }

  /** The entry if present and not expired; an expired one is dropped on sight. */
  #live (key: string): Entry | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt !== 0 && entry.expiresAt <= this.#now()) {
      this.#remove(key, entry)
      return undefined
    }
    return entry
  }

  /** False when the entry alone is larger than the whole store. */
  #put (key: string, { value, casToken, ttlMs }: StoreWrite): boolean {
    const previous = this.#entries.get(key)
    if (previous !== undefined) this.#remove(key, previous)
    const bytes = Buffer.byteLength(key) + Buffer.byteLength(value) + casToken.length
    if (bytes > this.#maxBytes) return false
    this.#insert(key, { value, casToken, bytes, expiresAt: ttlMs === 0 ? 0 : this.#now() + ttlMs, usedAt: this.#now() })
    return true
  }

  #insert (key: string, entry: Entry): void {
    this.#entries.set(key, entry)
    this.#bytes += entry.bytes
    for (const [oldestKey, oldest] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break
      this.#remove(oldestKey, oldest)
    }
  }

  #remove (key: string, entry: Entry): void {
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }
}
