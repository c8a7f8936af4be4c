import { CounterOverflowError, MAX_COUNTER, type Census, type Store, type StoredEntry, type StoreWrite, type WriteMode } from './store.js'

interface Entry {
  /** Absent while the key is only a delete lock. */
  value?: string
  casToken?: string
  /** Epoch milliseconds; 0 means no expiry. */
  expiresAt: number
  /** Epoch milliseconds of the last read or write. */
  usedAt: number
  bytes: number
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
