import { MAX_KEY_BYTES, type Cache, type CacheStats } from '@visitme/memcache'
import type { MinutePoint } from './chart.js'
import { keyOfMember, minuteOf, type MinuteStore, type SampledKey } from './history.js'
import type { ServerInfo } from './redis-info.js'

/** A namespace's row: memcache's stats summed over every instance, and its hit ratio. */
export interface NamespaceRow extends CacheStats {
  namespace: string
  hitRatio: number | null
}

export interface HotKey extends SampledKey {
  /** Operations in the window, estimated from the samples. */
  operations: number
  /** Its part of every sampled operation in the window, 0–1. */
  share: number
}

/** What a key holds, as the console shows it. */
export interface KeyView {
  namespace: string
  key: string
  /** Hashed in the store (longer than memcache's key limit). */
  hashed: boolean
  storeKey: string
  found: boolean
  /** Delete-locked: no value, add() refused until `lockedUntil`. */
  lockedUntil?: Date
  type?: string
  /** The value as text: pretty-printed JSON, a string as it is; cut at MAX_SHOWN characters. */
  text?: string
  /** The text's full length in characters, when it was cut. */
  textLength?: number
  storedBytes?: number
  /** Seconds left; undefined: no expiry. */
  ttlLeft?: number
  /** The form's starting point: how the value can be edited, and as what text. */
  edit?: { type: ValueType, text: string }
}

export type ValueType = 'string' | 'number' | 'json'
export const VALUE_TYPES: readonly ValueType[] = ['string', 'number', 'json']

/** Characters of a value or key the pages show; the rest is counted, not shown. */
export const MAX_SHOWN = 10_000

/** A change refused before anything was written (a number that is none, JSON that does not parse). */
export class InputError extends Error {
  override name = 'InputError'
}

/** The cache answered nothing (down, or its circuit open). */
export class UnavailableError extends Error {
  override name = 'UnavailableError'
}

/** The text as typed, turned into the value of the type chosen. */
export function parseTyped (type: ValueType, text: string): unknown {
  switch (type) {
    case 'string': return text
    case 'number': {
      const value = Number(text.trim())
      if (text.trim() === '' || !Number.isFinite(value)) throw new InputError(`"${text.slice(0, 50)}" is not a number`)
      return value
    }
    case 'json':
      try {
        return JSON.parse(text)
      } catch (err) {
        throw new InputError(`not JSON: ${(err as Error).message}`)
      }
  }
}

/** The value's type as a person reads it: JSON's names, and the JavaScript types the cache keeps. */
export function typeName (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (value instanceof Date) return 'Date'
  if (Buffer.isBuffer(value)) return 'Buffer'
  if (value instanceof Map) return 'Map'
  if (value instanceof Set) return 'Set'
  return typeof value === 'object' ? 'object' : typeof value
}

/** The value as readable text: a string as it is, anything else as indented JSON with the kept types spelled out. */
export function prettyText (value: unknown): string {
  if (typeof value === 'string') return value
  if (typeof value === 'bigint') return `${value}n`
  return JSON.stringify(value, function (key, v: unknown) {
    const original = (this as Record<string, unknown>)[key]
    if (typeof v === 'bigint') return `${v}n`
    if (Buffer.isBuffer(original)) return `<Buffer ${original.length} bytes>`
    if (original instanceof Map) return Object.fromEntries([...original].map(([k, mv]) => [String(k), mv]))
    if (original instanceof Set) return [...original]
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v)
    return v
  }, 2) ?? String(value)
}

/** Characters of a value the edit form is filled with; a larger value is replaced, not edited, there. */
export const MAX_EDITED = 100_000

/** How the edit form offers a value: as the type it has, when JSON can carry it back unchanged. */
function editable (value: unknown): { type: ValueType, text: string } | undefined {
  const offered = editableAs(value)
  return offered === undefined || offered.text.length > MAX_EDITED ? undefined : offered
}

function editableAs (value: unknown): { type: ValueType, text: string } | undefined {
  if (typeof value === 'string') return { type: 'string', text: value }
  if (typeof value === 'number' && Number.isFinite(value)) return { type: 'number', text: String(value) }
  try {
    const text = JSON.stringify(value, null, 2)
    // Dates, bigints, Maps... would come back as something else: not offered for editing as JSON.
    if (text !== undefined && typeName(value) !== 'Date' && JSON.stringify(JSON.parse(text)) === JSON.stringify(value) && !/"\$/.test(text)) return { type: 'json', text }
  } catch {}
  return undefined
}

export interface CacheConsoleOptions {
  /** The app's cache: the console reads and writes exactly as the app's code does. */
  cache: Cache
  /** The view getStats() is asked of (one that reads a replica, when there is one). */
  statsCache?: Cache
  /** The namespaces to list: the app's own, and whichever this instance has read from. */
  namespaces: () => string[]
  minutes: MinuteStore
  servers: () => Promise<ServerInfo[]>
}

/** The cache console's domain: stats per namespace, history, hot keys, and a key's reading and writing. */
export class CacheConsole {
  readonly #cache: Cache
  readonly #statsCache: Cache
  readonly #namespaces: () => string[]
  readonly #minutes: MinuteStore
  readonly servers: () => Promise<ServerInfo[]>

  constructor ({ cache, statsCache = cache, namespaces, minutes, servers }: CacheConsoleOptions) {
    this.#cache = cache
    this.#statsCache = statsCache
    this.#namespaces = namespaces
    this.#minutes = minutes
    this.servers = servers
  }

  namespaces (): string[] {
    return [...new Set(this.#namespaces())].sort()
  }

  /** Every namespace's stats, summed over the instances (counted with a census of the store). */
  async rows (): Promise<NamespaceRow[]> {
    return await Promise.all(this.namespaces().map(async (namespace) => {
      const stats = await this.#statsCache.getStats({ namespace })
      const reads = stats.hits + stats.misses
      return { namespace, ...stats, hitRatio: reads === 0 ? null : stats.hits / reads }
    }))
  }

  /**
   * The last `minutes` minutes (the current one included), of one namespace or of all; undefined
   * when the store did not answer (the page says so rather than failing).
   */
  async history (minutes: number, namespace?: string, now = Date.now()): Promise<MinutePoint[] | undefined> {
    const last = minuteOf(now)
    const wanted = Array.from({ length: minutes }, (_, i) => last - minutes + 1 + i)
    const counts = await this.#minutes.readCounts(wanted).catch(() => undefined)
    if (counts === undefined) return undefined
    return wanted.map((minute, i) => {
      const point: MinutePoint = { at: new Date(minute * 60_000), hits: 0, misses: 0, errors: 0 }
      for (const [ns, c] of counts[i]!) {
        if (namespace !== undefined && ns !== namespace) continue
        point.hits += c.hits
        point.misses += c.misses
        point.errors += c.errors
      }
      return point
    })
  }

  /** The keys with the most operations over the last `minutes` minutes, across instances; undefined when the store did not answer. */
  async hotKeys (minutes = 5, top = 20, now = Date.now()): Promise<{ keys: HotKey[], operations: number } | undefined> {
    const last = minuteOf(now)
    const read = await this.#minutes.readKeys(Array.from({ length: minutes }, (_, i) => last - i)).catch(() => undefined)
    if (read === undefined) return undefined
    const { keys, total } = read
    const ranked = [...keys].sort((a, b) => b[1] - a[1]).slice(0, top).flatMap(([member, operations]) => {
      const key = keyOfMember(member)
      return key === undefined ? [] : [{ ...key, operations, share: total === 0 ? 0 : operations / total }]
    })
    return { keys: ranked, operations: total }
  }

  /** What the key holds, as the app's cache reads it, without counting as a read. */
  async find (namespace: string, key: string, now = Date.now()): Promise<KeyView> {
    const found = await this.#cache.inspect(key, { namespace })
    if (found === 'unavailable') throw new UnavailableError('the cache did not answer')
    const hashed = key.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(key) > MAX_KEY_BYTES
    if (found === undefined) return { namespace, key, hashed, storeKey: '', found: false }
    const view: KeyView = {
      namespace,
      key,
      hashed,
      storeKey: found.storeKey,
      found: true,
      storedBytes: found.storedBytes,
      ttlLeft: found.expirationTimeSec === 0 ? undefined : Math.max(0, found.expirationTimeSec - Math.floor(now / 1000))
    }
    if (found.deleteLockTimeSec > 0 && found.value === undefined && found.undecodable === undefined) {
      return { ...view, lockedUntil: new Date(found.deleteLockTimeSec * 1000) }
    }
    const text = found.undecodable ?? prettyText(found.value)
    return {
      ...view,
      type: found.undecodable === undefined ? typeName(found.value) : 'undecodable text',
      text: text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN) : text,
      textLength: text.length > MAX_SHOWN ? text.length : undefined,
      edit: found.undecodable === undefined ? editable(found.value) : undefined
    }
  }

  /** Stores the typed value with the TTL (memcache's rules; 0: none). */
  async set (namespace: string, key: string, type: ValueType, text: string, ttl: number): Promise<void> {
    const value = parseTyped(type, text)
    let stored: boolean
    try {
      stored = await this.#cache.set(key, value, { namespace, ttl })
    } catch (err) {
      // Misuse the cache refuses (a value too large, a key that is not well-formed): the operator's to fix.
      throw new InputError((err as Error).message)
    }
    if (!stored) throw new UnavailableError('the cache did not take the value')
  }

  /** Deletes the key; with lockSeconds, add() of it fails for that long. */
  async delete (namespace: string, key: string, lockSeconds: number): Promise<'deleted' | 'missing'> {
    let result
    try {
      result = await this.#cache.delete(key, { namespace, lockSeconds })
    } catch (err) {
      throw new InputError((err as Error).message)
    }
    if (result === 'failed') throw new UnavailableError('the cache did not answer')
    return result
  }

  /** Removes every value of the namespace, and nothing else. */
  async flush (namespace: string): Promise<void> {
    if (!await this.#cache.flushAll({ namespace })) throw new UnavailableError('the cache did not answer')
  }
}
