/** memcache's rule: a TTL up to 30 days is relative; anything larger is a Unix time. */
const MAX_RELATIVE_SECONDS = 30 * 24 * 3600

/**
 * Seconds a value should live from now under memcache's TTL rules: 0 means no
 * expiry; a result below 0 means the value is already expired.
 */
export function ttlSeconds (ttl: number, nowMs = Date.now()): number {
  if (!Number.isFinite(ttl) || ttl < 0) throw new RangeError(`ttl must be a number of seconds >= 0, got ${ttl}`)
  if (ttl === 0) return 0
  if (ttl <= MAX_RELATIVE_SECONDS) return Math.ceil(ttl)
  const remaining = Math.ceil(ttl - nowMs / 1000)
  return remaining > 0 ? remaining : -1
}
