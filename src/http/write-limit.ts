import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { RedisClient } from '../cache/index.js'

/** A client went over its budget of writes; the app answers 429 with Retry-After. */
export class TooManyWritesError extends Error {
  override name = 'TooManyWritesError'
  readonly statusCode = 429

  constructor (readonly retryAfterSeconds: number) {
    super(`Too many changes from this address; try again in ${retryAfterSeconds} s.`)
  }
}

/** Counts one write of the request's client; throws TooManyWritesError past the budget. */
export type WriteLimit = (request: FastifyRequest) => Promise<void>

export interface WriteLimitOptions {
  /** Writes per client IP per minute; 0: no limit. */
  max: number
  /** Counts are shared by every instance through it; without it each process counts its own. */
  redis?: RedisClient
  /** Prefix of the counters' keys. */
  namespace: string
  /** Whether Redis is expected to answer (the cache's circuit): when not, writes are not counted at all. */
  available?: () => boolean
}

/**
 * One budget per client IP for every write the app makes (a visit stored, a form
 * posted), counted in Redis by @fastify/rate-limit. It fails open: with Redis down
 * or slow (bounded by the client's command timeout), writes are not limited.
 * Reads, and visits served from the cache, never count.
 */
export async function writeLimit (app: FastifyInstance, { max, redis, namespace, available = () => true }: WriteLimitOptions): Promise<WriteLimit> {
  if (max === 0) return async () => {}
  await app.register(rateLimit, {
    global: false,
    max,
    timeWindow: 60_000,
    redis,
    nameSpace: `${namespace}:rl:`,
    skipOnError: true
  })
  const check = app.createRateLimit()
  return async (request) => {
    // A Redis the cache has given up on would cost every write a command timeout, only to fail open.
    if (!available()) return
    const result = await check(request)
    if (!result.isAllowed && result.isExceeded) throw new TooManyWritesError(Math.max(1, result.ttlInSeconds))
  }
}
