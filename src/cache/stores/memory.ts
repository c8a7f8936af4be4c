import type { Store } from './store.js'

interface Entry {
  value: string
  /** Epoch milliseconds; 0 means no expiry. */
  expiresAt: number
  bytes: number
}

export interface MemoryStoreOptions {
  /** Upper bound of keys plus values, in bytes; least recently used entries go first. */
  maxBytes?: number
  now?: () => number
}

/** An in-process store: the embedded default when no Redis is configured. */
export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly connected = true
  readonly #entries = new Map<string, Entry>()
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

  async get (key: string): Promise<string | undefined> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt !== 0 && entry.expiresAt <= this.#now()) {
      this.#remove(key, entry)
      return undefined
    }
    // Map keeps insertion order: re-inserting marks the entry most recently used.
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    return entry.value
  }

  /** Milliseconds the key has left, with Redis' PTTL answers: -1 for no expiry, -2 when missing. */
  async pttl (key: string): Promise<number> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return -2
    if (entry.expiresAt === 0) return -1
    const left = entry.expiresAt - this.#now()
    return left > 0 ? left : -2
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    const previous = this.#entries.get(key)
    if (previous !== undefined) this.#remove(key, previous)
    const bytes = Buffer.byteLength(key) + Buffer.byteLength(value)
    if (bytes > this.#maxBytes) return
    this.#entries.set(key, { value, bytes, expiresAt: ttlSeconds > 0 ? this.#now() + ttlSeconds * 1000 : 0 })
    this.#bytes += bytes
    for (const [oldestKey, oldest] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break
      this.#remove(oldestKey, oldest)
    }
  }

  async delete (key: string): Promise<boolean> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return false
    this.#remove(key, entry)
    return entry.expiresAt === 0 || entry.expiresAt > this.#now()
  }

  #remove (key: string, entry: Entry): void {
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }
}
