/** memcache's rule: a TTL up to 30 days is relative; anything larger is a Unix time. */
const MAX_RELATIVE_SECONDS = 30 * 24 * 3600

/**
 * Milliseconds a value should live from now under memcache's TTL rules: 0 means no
 * expiry; an absolute time already past gives -1: the write happens, and the value is gone at once.
 */
export function ttlMs (ttl: number, nowMs = Date.now()): number {
  if (typeof ttl !== 'number') throw new TypeError(`ttl must be a number of seconds, got ${typeof ttl}`)
  if (!Number.isFinite(ttl) || ttl < 0) throw new RangeError(`ttl must be a number of seconds >= 0, got ${ttl}`)
  if (ttl === 0) return 0
  if (ttl <= MAX_RELATIVE_SECONDS) return Math.ceil(ttl * 1000)
  const left = Math.ceil(ttl * 1000 - nowMs)
  return left > 0 ? left : -1
}

/** ttlMs() of the seconds rounded up to whole ones, as App Engine's memcache takes a TTL or a delete lock. */
export function memcacheTtlMs (ttl: number, nowMs = Date.now()): number {
  ttlMs(ttl, nowMs)
  return ttlMs(Math.ceil(ttl), nowMs)
}
