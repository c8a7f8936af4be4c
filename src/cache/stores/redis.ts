import { Cluster, type Redis, type Result } from 'ioredis'
import { CounterOverflowError, type Census, type Store, type StoredEntry, type StoreWrite, type WriteMode } from './store.js'

/*
 * A TTL of 0 means none; PEXPIRE with a negative one deletes the key at once.
 * Layout: every key is a small hash. `v` holds the serialized value, `c` a token that
 * every write replaces (for gets/cas), and a key locked by delete(lockSeconds) holds
 * only `l`. Each operation is one Lua script on one key, so it is atomic against
 * every other process and stays valid on Redis Cluster.
 */

const WRITE = `
local k = KEYS[1]
if ARGV[1] == 'add' then
  if redis.call('EXISTS', k) == 1 then return 0 end
elseif ARGV[1] == 'replace' then
  if redis.call('HEXISTS', k, 'v') == 0 then return 0 end
end
redis.call('DEL', k)
redis.call('HSET', k, 'v', ARGV[2], 'c', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIRE', k, ARGV[4]) end
return 1`

const CAS = `
local k = KEYS[1]
if redis.call('HGET', k, 'c') ~= ARGV[1] then return 0 end
redis.call('HSET', k, 'v', ARGV[2], 'c', ARGV[3])
if ARGV[4] ~= '0' then redis.call('PEXPIRE', k, ARGV[4]) else redis.call('PERSIST', k) end
return 1`

const DELETE = `
local k = KEYS[1]
if redis.call('HEXISTS', k, 'v') == 0 then return 0 end
redis.call('DEL', k)
if ARGV[1] ~= '0' then
  redis.call('HSET', k, 'l', '1')
  redis.call('PEXPIRE', k, ARGV[1])
end
return 1`

// The result goes back as a string: a Lua number is a double and would round big counters.
const INCR = `
local k = KEYS[1]
if redis.call('HEXISTS', k, 'v') == 0 then
  if ARGV[2] == '' then return false end
  redis.call('DEL', k)
  redis.call('HSET', k, 'v', ARGV[2])
end
redis.call('HINCRBY', k, 'v', ARGV[1])
local value = redis.call('HGET', k, 'v')
if string.sub(value, 1, 1) == '-' then
  value = '0'
  redis.call('HSET', k, 'v', value)
end
redis.call('HSET', k, 'c', ARGV[3])
return value`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cacheWrite (key: string, mode: WriteMode, value: string, casToken: string, ttlMs: number): Result<number, Context>
    cacheCas (key: string, expected: string, value: string, casToken: string, ttlMs: number): Result<number, Context>
    cacheDelete (key: string, lockMs: number): Result<number, Context>
    cacheIncr (key: string, delta: string, initial: string, casToken: string): Result<string | null, Context>
  }
}

function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Adds a node's keys under the prefix to `keys`; false when it stopped early. Bounded by
 * keys examined, not only by keys found: a huge keyspace stops the count early.
 */
async function scanInto (keys: string[], node: Redis, prefix: string, limit: number): Promise<boolean> {
  let cursor = '0'
  let scans = 0
  do {
    const [next, found] = await node.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0' && keys.length < limit && ++scans < MAX_SCANS)
  return cursor === '0' && keys.length <= limit
}

/** A standalone instance (or its read replica), or a cluster from its discovery endpoint. */
export type RedisClient = Redis | Cluster

/** Results of a pipeline, or the first error in it. */
function unwrap<T> (results: Array<[Error | null, unknown]> | null): T[] {
  if (results === null) throw new Error('pipeline discarded')
  return results.map(([err, value]) => {
    if (err !== null) throw err
    return value as T
  })
}

/**
 * A store on an ioredis client; the client's own settings bound every command.
 * Calls on several keys go out as one command per key in the same tick: the client's
 * auto-pipelining sends them as one batch per node, which a Cluster needs (a pipeline
 * there must stay within one slot) and which costs a standalone Redis nothing.
 */
export class RedisStore implements Store {
  readonly kind = 'redis'

  constructor (readonly client: RedisClient) {
    // ioredis sends EVALSHA and falls back to EVAL once per script and connection.
    if (typeof client.cacheWrite !== 'function') {
      client.defineCommand('cacheWrite', { numberOfKeys: 1, lua: WRITE })
      client.defineCommand('cacheCas', { numberOfKeys: 1, lua: CAS })
      client.defineCommand('cacheDelete', { numberOfKeys: 1, lua: DELETE })
      client.defineCommand('cacheIncr', { numberOfKeys: 1, lua: INCR })
    }
  }

  get connected (): boolean {
    return this.client.status === 'ready'
  }

  async get (keys: readonly string[]): Promise<Array<StoredEntry | undefined>> {
    const toEntry = ([value, casToken]: Array<string | null>) =>
      value === null || value === undefined ? undefined : { value, casToken: casToken ?? '' }
    return (await Promise.all(keys.map((key) => this.client.hmget(key, 'v', 'c')))).map(toEntry)
  }

  async write (mode: WriteMode, entries: readonly StoreWrite[]): Promise<boolean[]> {
    const stored = await Promise.all(entries.map(({ key, value, casToken, ttlMs }) =>
      this.client.cacheWrite(key, mode, value, casToken, ttlMs)))
    return stored.map((done) => done === 1)
  }

  async cas ({ key, value, casToken, ttlMs }: StoreWrite, expectedToken: string): Promise<boolean> {
    return (await this.client.cacheCas(key, expectedToken, value, casToken, ttlMs)) === 1
  }

  async delete (keys: readonly string[], lockMs: number): Promise<boolean[]> {
    const existed = await Promise.all(keys.map((key) => this.client.cacheDelete(key, lockMs)))
    return existed.map((found) => found === 1)
  }

  async incr (key: string, delta: bigint, initial: bigint | undefined, casToken: string): Promise<string | undefined> {
    try {
      return (await this.client.cacheIncr(key, delta.toString(), initial?.toString() ?? '', casToken)) ?? undefined
    } catch (err) {
      const message = (err as Error).message
      if (message.includes('overflow')) throw new CounterOverflowError(`incrementing ${key} would pass 2^63 - 1`)
      if (message.includes('not an integer')) return undefined
      throw err
    }
  }

  /** The servers holding keys: every primary of a cluster, or the one instance. */
  #primaries (): Redis[] {
    return this.client instanceof Cluster ? this.client.nodes('master') : [this.client]
  }

  async flush (prefix: string): Promise<void> {
    const match = `${escapeGlob(prefix)}*`
    await Promise.all(this.#primaries().map(async (node) => {
      let cursor = '0'
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000)
        // One key per UNLINK: a cluster node refuses a multi-key command across slots.
        if (keys.length > 0) {
          const pipeline = node.pipeline()
          for (const key of keys) pipeline.unlink(key)
          unwrap(await pipeline.exec())
        }
        cursor = next
      } while (cursor !== '0')
    }))
  }

  async pttl (key: string): Promise<number> {
    return await this.client.pttl(key)
  }

  async addCounters (batch: ReadonlyMap<string, Readonly<Record<string, number>>>): Promise<void> {
    const increments: Array<Promise<number>> = []
    for (const [key, deltas] of batch) {
      for (const [name, delta] of Object.entries(deltas)) if (delta !== 0) increments.push(this.client.hincrby(key, name, delta))
    }
    await Promise.all(increments)
  }

  async readCounters (key: string): Promise<Record<string, number>> {
    const raw = await this.client.hgetall(key)
    return Object.fromEntries(Object.entries(raw).map(([name, value]) => [name, Number(value)]))
  }

  /**
   * Counts keys with SCAN (up to `limit`), and estimates bytes and the oldest item's
   * age from MEMORY USAGE and OBJECT IDLETIME of a sample of them.
   */
  async census (prefixes: readonly string[], limit: number): Promise<Census> {
    const keys: string[] = []
    let complete = true
    for (const node of this.#primaries()) {
      for (const prefix of prefixes) {
        if (complete) complete = await scanInto(keys, node, prefix, limit)
      }
    }
    // SCAN may return a key twice (while the table is resized).
    const unique = [...new Set(keys)]
    const items = Math.min(unique.length, limit)
    const sample = unique.slice(0, SAMPLE_SIZE)
    if (sample.length === 0) return { items: 0, bytes: 0, oldestItemAge: 0, complete }
    // Either may be refused (IDLETIME under an LFU eviction policy): the figure is then unknown, and 0.
    const figures = await Promise.all(sample.map(async (key) => await Promise.all([
      this.client.memory('USAGE', key).catch(() => 0),
      this.client.object('IDLETIME', key).catch(() => 0)
    ])))
    let sampledBytes = 0
    let oldestItemAge = 0
    for (const [bytes, idle] of figures) {
      sampledBytes += Number(bytes ?? 0)
      oldestItemAge = Math.max(oldestItemAge, Number(idle ?? 0))
    }
    return { items, bytes: Math.round(sampledBytes / sample.length * items), oldestItemAge, complete }
  }
}

/** Keys whose size and idle time are read for getStats(). */
const SAMPLE_SIZE = 64
/** SCAN calls of 1,000 keys each that one census may make per prefix. */
const MAX_SCANS = 100
