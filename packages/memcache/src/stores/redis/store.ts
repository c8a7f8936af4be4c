import { randomUUID } from 'node:crypto'
import { Cluster, type Redis, type Result } from 'ioredis'
import { createRedisClient, type RedisClient, type RedisConnection } from './client.js'
import {
  CounterOverflowError, LIST_KEEP_MS, type Census, type PeekedEntry, type ListItem, type ListReservation, type ListReservationRequest, type Store, type StoredEntry, type StoredList, type StoreWrite,
  type SubscribeHandlers, type Subscription, type WriteMode
} from '../store.js'

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

// A delete lock is deleted too, and locked again with the new time: the last delete wins.
const DELETE = `
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then return 0 end
redis.call('DEL', k)
if ARGV[1] ~= '0' then
  redis.call('HSET', k, 'l', '1')
  redis.call('PEXPIRE', k, ARGV[1])
end
return 1`

// A counter is bare digits, with an "n" after them for a bigint, which it keeps. HINCRBY
// does the arithmetic on the digits: exact to 2^63 - 1, refusing a larger value (no counter)
// and an overflow (an error, after the value is put back). The result goes back as a
// string: a Lua number is a double and would round big counters.
const INCR = `
local k = KEYS[1]
local stored = redis.call('HGET', k, 'v')
local digits, suffix = stored, ''
if not stored then
  if ARGV[2] == '' then return false end
  redis.call('DEL', k)
  digits = ARGV[2]
  redis.call('HSET', k, 'v', digits)
else
  if string.sub(stored, -1) == 'n' then
    digits = string.sub(stored, 1, -2)
    suffix = 'n'
  end
  if not string.match(digits, '^%d+$') then return false end
  if suffix == 'n' then redis.call('HSET', k, 'v', digits) end
end
local done = redis.pcall('HINCRBY', k, 'v', ARGV[1])
if type(done) == 'table' and done.err then
  if stored then redis.call('HSET', k, 'v', stored) else redis.call('DEL', k) end
  if string.find(done.err, 'overflow') then return redis.error_reply('ERR increment or decrement would overflow') end
  return false
end
local value = redis.call('HGET', k, 'v')
if string.sub(value, 1, 1) == '-' then value = '0' end
value = value .. suffix
redis.call('HSET', k, 'v', value, 'c', ARGV[3])
return value`

// Read without counting as a use: OBJECT reads the key's idle time (or, under an LFU policy,
// its frequency) untouched, and RESTORE puts it back after the read. Where RESTORE is refused
// the peek still answers, and the key counts as used.
const PEEK = `
local k = KEYS[1]
local idle = redis.pcall('OBJECT', 'IDLETIME', k)
local freq = redis.pcall('OBJECT', 'FREQ', k)
local f = redis.call('HMGET', k, 'v', 'l')
if not f[1] and not f[2] then return false end
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = redis.call('PTTL', k)
local expires, restoreAt = -1, 0
if ttl >= 0 then
  expires = nowMs + ttl
  restoreAt = expires
end
local last = 0
if type(idle) == 'number' then
  last = nowMs - idle * 1000
  redis.pcall('RESTORE', k, restoreAt, redis.call('DUMP', k), 'REPLACE', 'ABSTTL', 'IDLETIME', idle)
elseif type(freq) == 'number' then
  redis.pcall('RESTORE', k, restoreAt, redis.call('DUMP', k), 'REPLACE', 'ABSTTL', 'FREQ', freq)
end
return {f[1] or '', expires, string.format('%.0f', last)}`

// Lists: `v` holds the items as JSON ({i: id, t: order, v: value, r: reserved until}), `n` the
// version (Redis TIME in microseconds, never lower than the last one), `b` marks a list being
// built, `x` when it expires, `g` that it was given up (a reservation ran out). Times are Redis'
// milliseconds. A key without `n` holds no list. The list expires by `x`, not by the key's own
// TTL, so that a rebuild finds the reservations of writes still in flight (LIST_BEGIN keeps
// them); the key outlives `x` by LIST_KEEP_MS. Every script starts with LIST_COMMON; a script's
// reply is RawList (its extra fields after).

const LIST_COMMON = `
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nowMs = math.floor(now / 1000)
-- Byte order, not strcoll(): Redis compares Lua strings in the server's locale.
local function bytesAfter (a, b)
  for j = 1, math.min(#a, #b) do
    local x, y = string.byte(a, j), string.byte(b, j)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local function newer (a, b)
  if a.t ~= b.t then return a.t > b.t end
  return bytesAfter(a.i, b.i)
end
-- The fields and items of the list at k, and whether it is live (not expired, not given up). A
-- reservation past its time belongs to a writer that never said how its write ended: nobody
-- knows what the list lacks, so it is given up, and that announced once.
local function load ()
  local f = redis.call('HMGET', k, 'v', 'b', 'n', 'x', 'g')
  if not f[3] then return nil end
  local list = cjson.decode(f[1])
  if f[5] or (f[4] and tonumber(f[4]) <= nowMs) then return f, list, false end
  for _, item in ipairs(list) do
    if item.r and item.r <= nowMs then
      redis.call('HSET', k, 'g', '1')
      redis.call('PUBLISH', k, 'dropped')
      return f, list, false
    end
  end
  return f, list, true
end
local function insert (list, item)
  local at = #list + 1
  for j, have in ipairs(list) do
    if newer(item, have) then at = j break end
  end
  table.insert(list, at, item)
end
-- Keeps the newest limit settled items and the reservations above the last of them.
local function trim (list, limit)
  local kept, settled = {}, 0
  for _, item in ipairs(list) do
    if settled == limit then break end
    table.insert(kept, item)
    if not item.r then settled = settled + 1 end
  end
  return kept
end
-- Removes the reservation with that id, if there is one; true when it did.
local function unreserve (list, id)
  for j, item in ipairs(list) do
    if item.i == id then
      if item.r then table.remove(list, j) return true end
      return false
    end
  end
  return false
end
local function save (f, list)
  if now <= tonumber(f[3]) then now = tonumber(f[3]) + 1 end
  local n = string.format('%.0f', now)
  local encoded = '[]'
  if #list > 0 then encoded = cjson.encode(list) end
  redis.call('HSET', k, 'v', encoded, 'n', n)
  f[1] = encoded
  f[3] = n
end
-- Expires the list in ms (0: never).
local function expire (f, ms)
  if ms == 0 then
    redis.call('HDEL', k, 'x')
    redis.call('PERSIST', k)
    f[4] = false
  else
    f[4] = string.format('%.0f', nowMs + ms)
    redis.call('HSET', k, 'x', f[4])
    redis.call('PEXPIRE', k, ms + ${LIST_KEEP_MS})
  end
end
-- The settled items, and of the reservations only what callers decide by: how many, the time
-- left to the soonest to run out, and whether the newest settled value is also reserved above
-- it. A reply does not grow with the writes in flight.
local function reply (f, list)
  local settled, count, soonest, newestReserved, above = {}, 0, false, '', {}
  for _, item in ipairs(list) do
    if item.r then
      count = count + 1
      if not soonest or item.r < soonest then soonest = item.r end
      if #settled == 0 then above[item.v] = true end
    else
      if #settled == 0 and above[item.v] then newestReserved = '1' end
      table.insert(settled, item)
    end
  end
  local encoded = '[]'
  if #settled > 0 then encoded = cjson.encode(settled) end
  local ttl = -1
  if f[4] then ttl = tonumber(f[4]) - nowMs end
  local left = ''
  if soonest then left = string.format('%.0f', soonest - nowMs) end
  return {encoded, f[2] or '', f[3], ttl, count, left, newestReserved}
end
`

const LIST_GET = `${LIST_COMMON}
local f, list, live = load()
if not live then return false end
return reply(f, list)`

// A list that expired or was given up is built anew with the reservations still running in it.
const LIST_BEGIN = `${LIST_COMMON}
local f, list, live = load()
if live then
  local r = reply(f, list)
  table.insert(r, '')
  return r
end
local kept = {}
for _, item in ipairs(list or {}) do
  if item.r and item.r > nowMs then table.insert(kept, item) end
end
local fresh = {'[]', '1', string.format('%.0f', now)}
if f and now <= tonumber(f[3]) then fresh[3] = string.format('%.0f', tonumber(f[3]) + 1) end
redis.call('DEL', k)
redis.call('HSET', k, 'b', '1', 'n', fresh[3])
save(fresh, kept)
expire(fresh, tonumber(ARGV[1]))
local r = reply(fresh, kept)
table.insert(r, '1')
return r`

const LIST_ADD = `${LIST_COMMON}
local f, list, live = load()
local items = cjson.decode(ARGV[1])
if not live then
  -- Settled for good: a rebuild must not take it for a write still in flight.
  if f then
    local changed = false
    for _, item in ipairs(items) do changed = unreserve(list, item.i) or changed end
    if changed then save(f, list) end
  end
  return false
end
for _, item in ipairs(items) do
  local found = false
  for _, have in ipairs(list) do
    if have.i == item.i then found = true break end
  end
  if unreserve(list, item.i) then found = false end
  if not found then insert(list, item) end
end
list = trim(list, tonumber(ARGV[2]))
save(f, list)
if ARGV[3] ~= '' then
  redis.call('HDEL', k, 'b')
  f[2] = ''
  expire(f, tonumber(ARGV[3]))
end
redis.call('PUBLISH', k, f[3])
return reply(f, list)`

// A reservation changes no settled item: it is not announced.
const LIST_RESERVE = `${LIST_COMMON}
local f, list, live = load()
if not live then return false end
local function answer (outcome, id, order)
  local r = reply(f, list)
  table.insert(r, outcome)
  if id then
    table.insert(r, id)
    table.insert(r, string.format('%.0f', order))
  end
  return r
end
local value = ARGV[1]
if f[2] == '1' then
  -- Carried into the list being built: that write is still in flight.
  for _, item in ipairs(list) do
    if item.r and item.v == value then return answer('reserved-already') end
  end
  return answer('building')
end
-- The newest settled item: a new entry is named after it (listItemId), not after a reservation.
local after
for _, item in ipairs(list) do
  if not item.r then
    if item.v == value then return answer('same') end
    after = item
    break
  end
  if item.v == value then return answer('reserved-already') end
end
local head = list[1]
local id = redis.sha1hex((after and after.i or '') .. '\\n' .. ARGV[2])
local order = tonumber(ARGV[3])
if head and order <= head.t then order = head.t + 1 end
table.insert(list, 1, {i = id, t = order, v = value, r = nowMs + tonumber(ARGV[5])})
list = trim(list, tonumber(ARGV[4]))
save(f, list)
return answer('reserved', id, order)`

const LIST_RELEASE = `${LIST_COMMON}
local f, list, live = load()
if not f then return false end
if unreserve(list, ARGV[1]) then save(f, list) end
if not live then return false end
return reply(f, list)`

/** [settled items as JSON, '1' while building, version, ms left, reservations, ms left to the soonest, '1' if the newest settled value is reserved, ...what the script adds] */
type RawList = [string, string, string, number, number, string, string, ...string[]]

function toList ([encoded, building, version, ttlMs, count, soonest, newestReserved]: RawList): StoredList {
  const parsed: unknown = JSON.parse(encoded)
  const items = Array.isArray(parsed)
    ? parsed.map((item: { i: string, t: number, v: string }) => ({ id: item.i, order: item.t, value: item.v }))
    : []
  return {
    items,
    building: building === '1',
    version: Number(version),
    ttlMs: Number(ttlMs),
    reserved: soonest === ''
      ? { count: Number(count), newestSettled: newestReserved === '1' }
      : { count: Number(count), soonestMs: Number(soonest), newestSettled: newestReserved === '1' }
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    cacheWrite (key: string, mode: WriteMode, value: string, casToken: string, ttlMs: number): Result<number, Context>
    cacheCas (key: string, expected: string, value: string, casToken: string, ttlMs: number): Result<number, Context>
    cacheDelete (key: string, lockMs: number): Result<number, Context>
    cacheIncr (key: string, delta: string, initial: string, casToken: string): Result<string | null, Context>
    cachePeek (key: string): Result<[string, number, string] | null, Context>
    cacheListGet (key: string): Result<RawList | null, Context>
    cacheListBegin (key: string, lockMs: number): Result<RawList, Context>
    cacheListAdd (key: string, items: string, limit: number, completeTtlMs: string): Result<RawList | null, Context>
    cacheListReserve (key: string, value: string, seed: string, order: number, limit: number, reservedMs: number): Result<RawList | null, Context>
    cacheListRelease (key: string, id: string): Result<RawList | null, Context>
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

/** HMGET's answer for the value and its token. */
function toEntry ([value, casToken]: Array<string | null>): StoredEntry | undefined {
  return value === null || value === undefined ? undefined : { value, casToken: casToken ?? '' }
}

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
 * Calls on several keys go out as one command per key, all sent before any reply is awaited:
 * one round trip, and valid on a Cluster, where a pipeline must stay within one slot.
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
      client.defineCommand('cachePeek', { numberOfKeys: 1, lua: PEEK })
      client.defineCommand('cacheListGet', { numberOfKeys: 1, lua: LIST_GET })
      client.defineCommand('cacheListBegin', { numberOfKeys: 1, lua: LIST_BEGIN })
      client.defineCommand('cacheListAdd', { numberOfKeys: 1, lua: LIST_ADD })
      client.defineCommand('cacheListReserve', { numberOfKeys: 1, lua: LIST_RESERVE })
      client.defineCommand('cacheListRelease', { numberOfKeys: 1, lua: LIST_RELEASE })
    }
  }

  /**
   * A store on a client of its own, made by createRedisClient(): the fail-fast settings without
   * a client to build first. `store.client.quit()` closes it.
   */
  static connect (connection: RedisConnection): RedisStore {
    return new RedisStore(createRedisClient(connection))
  }

  get connected (): boolean {
    return this.client.status === 'ready'
  }

  // Reads are plain commands, no script: HGET answers one string, as GET does.
  get (keys: readonly string[]): Promise<Array<string | undefined>> {
    return Promise.all(keys.map((key) => this.client.hget(key, 'v'))).then((values) => values.map((value) => value ?? undefined))
  }

  /** The command's own promise: the read of every get() takes no step besides it. */
  getOne (key: string): Promise<string | null> {
    return this.client.hget(key, 'v')
  }

  async gets (keys: readonly string[]): Promise<Array<StoredEntry | undefined>> {
    return (await Promise.all(keys.map((key) => this.client.hmget(key, 'v', 'c')))).map(toEntry)
  }

  async peek (keys: readonly string[]): Promise<Array<PeekedEntry | undefined>> {
    return (await Promise.all(keys.map((key) => this.client.cachePeek(key)))).map((found) => {
      if (found === null) return undefined
      const [value, expires, last] = found
      const times = { expiresAtMs: Math.max(0, expires), lastAccessMs: Number(last) }
      return value === '' ? { ...times, lockedUntilMs: times.expiresAtMs } : { value, ...times, lockedUntilMs: 0 }
    })
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
      if ((err as Error).message.includes('overflow')) throw new CounterOverflowError(`incrementing ${key} would pass 2^63 - 1`)
      throw err
    }
  }

  async listGet (key: string): Promise<StoredList | undefined> {
    const raw = await this.client.cacheListGet(key)
    return raw === null ? undefined : toList(raw)
  }

  async listBegin (key: string, lockMs: number): Promise<StoredList & { began: boolean }> {
    const raw = await this.client.cacheListBegin(key, lockMs)
    return { ...toList(raw), began: raw[7] === '1' }
  }

  async listAdd (key: string, items: readonly ListItem[], limit: number, completeTtlMs?: number): Promise<StoredList | undefined> {
    const wire = JSON.stringify(items.map(({ id, order, value }) => ({ i: id, t: order, v: value })))
    const raw = await this.client.cacheListAdd(key, wire, limit, completeTtlMs === undefined ? '' : String(completeTtlMs))
    return raw === null ? undefined : toList(raw)
  }

  async listReserve (key: string, { value, seed, order }: ListReservationRequest, limit: number, reservedMs: number): Promise<ListReservation | undefined> {
    const raw = await this.client.cacheListReserve(key, value, seed, order, limit, reservedMs)
    if (raw === null) return undefined
    const list = toList(raw)
    const outcome = raw[7] as ListReservation['outcome']
    return outcome === 'reserved' ? { ...list, outcome, id: raw[8]!, order: Number(raw[9]) } : { ...list, outcome }
  }

  async listRelease (key: string, id: string): Promise<StoredList | undefined> {
    const raw = await this.client.cacheListRelease(key, id)
    return raw === null ? undefined : toList(raw)
  }

  async publish (channel: string, message: string): Promise<void> {
    await this.#publisher().publish(channel, message)
  }

  /**
   * Where this store publishes. A cluster client sends a PUBLISH (no key) to any primary, and each
   * relays it to the others over the cluster bus: two messages sent through two nodes can arrive in
   * either order. Through one primary (the first by address, the same for as long as the topology
   * holds), a publisher's messages arrive in the order sent.
   */
  #publisher (): Redis | Cluster {
    if (!(this.client instanceof Cluster)) return this.client
    const address = (node: Redis): string => `${node.options.host ?? ''}:${node.options.port ?? ''}`
    return this.client.nodes('master').sort((a, b) => address(a).localeCompare(address(b)))[0] ?? this.client
  }

  /**
   * Subscriptions share one connection of their own, made on first use. It subscribes again
   * after every reconnect, and tells every handler to reset, since messages may have been lost.
   */
  subscribe (channel: string, handlers: SubscribeHandlers): Subscription {
    const store = this
    const subscriber = this.#subscriber ??= this.#connectSubscriber()
    let channelHandlers = this.#handlers.get(channel)
    if (channelHandlers === undefined) {
      channelHandlers = new Set()
      this.#handlers.set(channel, channelHandlers)
      if (subscriber.status === 'ready') this.#listen(subscriber, [channel])
    }
    channelHandlers.add(handlers)
    return {
      get live () { return store.#isLive(channel) },
      close: async () => {
        channelHandlers.delete(handlers)
        if (channelHandlers.size > 0) return
        this.#handlers.delete(channel)
        this.#live.delete(channel)
        if (this.#handlers.size === 0 && this.#subscriber !== undefined) {
          this.#subscriber = undefined
          clearInterval(this.#heartbeat)
          await subscriber.quit().catch(() => {})
          subscriber.disconnect()
        }
      }
    }
  }

  #subscriber: RedisClient | undefined
  readonly #handlers = new Map<string, Set<SubscribeHandlers>>()
  /** Channels whose messages arrive now. */
  readonly #live = new Set<string>()
  /**
   * A connection that goes silent (a network that drops packets) is not closed for a long
   * time, and a subscriber sends nothing that could time out: this store publishes to a
   * channel of its own every HEARTBEAT_MS, and its subscriptions count as live only while
   * that comes back through the subscriber within SILENCE_MS.
   */
  readonly #heartbeatChannel = `heartbeat:${randomUUID()}`
  #heardAt = 0
  /** When this process last ran again after not running for a while. */
  #resumedAt = 0
  #heartbeat: NodeJS.Timeout | undefined

  #isLive (channel: string): boolean {
    return this.#live.has(channel) && Date.now() - this.#heardAt <= SILENCE_MS
  }

  #connectSubscriber (): RedisClient {
    // Subscribed again by us after a reconnect, so that we know when messages flow again.
    const subscriber = this.client instanceof Cluster ? this.client.duplicate() : this.client.duplicate({ autoResubscribe: false })
    // Its errors are the main client's to report: they share the address and the fate.
    subscriber.on('error', () => {})
    subscriber.on('ready', () => { this.#listen(subscriber, [this.#heartbeatChannel, ...this.#handlers.keys()]) })
    subscriber.on('close', () => { this.#lose() })
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#heartbeatChannel) {
        this.#heardAt = Date.now()
        return
      }
      for (const handlers of this.#handlers.get(channel) ?? []) handlers.message(message)
    })
    let tickedAt = Date.now()
    this.#heartbeat = setInterval(() => {
      const now = Date.now()
      // A late tick means this process did not run (its CPU throttled between requests, or
      // frozen), not that the connection went silent: the silence is counted from now, so a
      // thaw costs no reconnect. Until a heartbeat comes back the subscriptions are not live.
      if (now - tickedAt > HEARTBEAT_MS + SILENCE_MS / 2) this.#resumedAt = now
      tickedAt = now
      if (this.#live.size > 0 && now - Math.max(this.#heardAt, this.#resumedAt) > SILENCE_MS) {
        // Silent: whatever was announced meanwhile is lost. Start over on a new connection.
        this.#lose()
        subscriber.disconnect(true)
      }
      if (this.client.status === 'ready') this.client.publish(this.#heartbeatChannel, '').catch(() => {})
    }, HEARTBEAT_MS).unref()
    return subscriber
  }

  /** Every subscription stops being live, and its handlers hear that messages may have been missed. */
  #lose (): void {
    const lost = [...this.#live]
    this.#live.clear()
    for (const channel of lost) for (const handlers of this.#handlers.get(channel) ?? []) handlers.reset()
  }

  #listen (subscriber: RedisClient, channels: string[]): void {
    if (channels.length === 0) return
    subscriber.subscribe(...channels).then(() => {
      this.#heardAt = Date.now()
      for (const channel of channels) {
        if (!this.#handlers.has(channel)) continue
        this.#live.add(channel)
        // What arrived before the subscription took effect was missed.
        for (const handlers of this.#handlers.get(channel) ?? []) handlers.reset()
      }
    }, () => { /* the next 'ready' subscribes again */ })
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
/** How often a store checks that its subscriber still hears, and how long a silence it tolerates. */
const HEARTBEAT_MS = 250
const SILENCE_MS = 1000
/** SCAN calls of 1,000 keys each that one census may make per prefix. */
const MAX_SCANS = 100
