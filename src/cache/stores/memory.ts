import { EventEmitter } from 'node:events'
import {
  CounterOverflowError, MAX_COUNTER, type Census, type ListItem, type Store, type StoredEntry, type StoredList,
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
  /** Present when the key holds a list. */
  list?: { items: ListItem[], building: boolean, version: number }
}

/** Newest first: by order, then by id descending (UTF-16 order, the same as bytes for ASCII ids). */
function newer (a: ListItem, b: ListItem): boolean {
  return a.order !== b.order ? a.order > b.order : a.id > b.id
}

export interface MemoryStoreOptions {
  /** Upper bound of keys plus values, in bytes; least recently used entries go first. */
  maxBytes?: number
  now?: () => number
}

const INTEGER = /^-?\d+$/

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

  async get (keys: readonly string[]): Promise<Array<StoredEntry | undefined>> {
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
      const current = this.#live(key)
      if (current?.value === undefined) return false
      this.#remove(key, current)
      if (lockMs > 0) this.#insert(key, { expiresAt: this.#now() + lockMs, usedAt: this.#now(), bytes: Buffer.byteLength(key) })
      return true
    })
  }

  async incr (key: string, delta: bigint, initial: bigint | undefined, casToken: string): Promise<string | undefined> {
    const current = this.#live(key)
    let base: bigint
    if (current?.value !== undefined) {
      if (!INTEGER.test(current.value)) return undefined
      base = BigInt(current.value)
    } else if (initial !== undefined) {
      base = initial
    } else {
      return undefined
    }
    let next = base + delta
    if (next > MAX_COUNTER) throw new CounterOverflowError(`incrementing ${key} would pass 2^63 - 1`)
    if (next < 0n) next = 0n
    const value = next.toString()
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
    const entry = this.#live(key)
    return entry?.list === undefined ? undefined : this.#listOf(entry)
  }

  async listBegin (key: string, lockMs: number): Promise<StoredList & { began: boolean }> {
    const entry = this.#live(key)
    if (entry?.list !== undefined) return { ...this.#listOf(entry), began: false }
    const created = this.#putList(key, [], { building: true, expiresAt: this.#now() + lockMs })
    return { ...this.#listOf(created), began: true }
  }

  async listAdd (key: string, items: readonly ListItem[], limit: number, { completeTtlMs, channel }: { completeTtlMs?: number, channel?: string }): Promise<StoredList | undefined> {
    const entry = this.#live(key)
    if (entry?.list === undefined) return undefined
    const list = [...entry.list.items]
    for (const item of items) {
      if (list.some((have) => have.id === item.id)) continue
      const at = list.findIndex((have) => newer(item, have))
      list.splice(at === -1 ? list.length : at, 0, { ...item })
    }
    list.length = Math.min(list.length, limit)
    const complete = completeTtlMs !== undefined
    const updated = this.#putList(key, list, {
      building: complete ? false : entry.list.building,
      expiresAt: complete ? (completeTtlMs === 0 ? 0 : this.#now() + completeTtlMs) : entry.expiresAt
    })
    if (channel !== undefined) this.#channels.emit(channel, String(updated.list!.version))
    return this.#listOf(updated)
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

  #listOf (entry: Entry): StoredList {
    const { items, building, version } = entry.list!
    return { items: items.map((item) => ({ ...item })), building, version, ttlMs: entry.expiresAt === 0 ? -1 : entry.expiresAt - this.#now() }
  }

  #putList (key: string, items: ListItem[], { building, expiresAt }: { building: boolean, expiresAt: number }): Entry {
    const previous = this.#entries.get(key)
    if (previous !== undefined) this.#remove(key, previous)
    this.#version = Math.max(this.#version + 1, this.#now() * 1000)
    const value = JSON.stringify(items)
    const entry: Entry = {
      value, casToken: '', expiresAt, usedAt: this.#now(), bytes: Buffer.byteLength(key) + Buffer.byteLength(value), list: { items, building, version: this.#version }
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
