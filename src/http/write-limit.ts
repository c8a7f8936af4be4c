import { channel } from 'node:diagnostics_channel'
import rateLimit from '@fastify/rate-limit'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** A client went over its budget of writes; the app answers 429 with Retry-After. */
export class TooManyWritesError extends Error {
  override name = 'TooManyWritesError'
  readonly statusCode = 429

  constructor (readonly retryAfterSeconds: number) {
    super(`Too many changes from this address; try again in ${retryAfterSeconds} s.`)
  }
}

/** A write refused, with the route it was sent to ({ route }), for whoever listens (the telemetry's metrics). */
export const writeRefusals = channel('visitme:write-refused')

/** Counts one write of the request's client; throws TooManyWritesError past the budget. */
export type WriteLimit = (request: FastifyRequest) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts one write of the request's client (a preHandler of every route that writes). */
    limitWrites: WriteLimit
  }
}

/**
 * One budget per client IP for every write the app makes (a visit stored, a form
 * posted), counted in Redis by @fastify/rate-limit. It fails open: with Redis down
 * or slow (bounded by the client's command timeout), writes are not limited.
 * Reads, and visits served from the cache, never count.
 */
export default fp<{ max: number }>(async function writeLimit (app, { max }) {
  if (max === 0) {
    app.decorate('limitWrites', async () => {})
    return
  }
  // Counted in Redis when there is one, so the budget holds across instances.
  await app.register(rateLimit, {
    global: false,
    max,
    timeWindow: 60_000,
    redis: app.hasDecorator('redis') ? app.redis : undefined,
    nameSpace: `${app.cache.namespace}:rl:`,
    skipOnError: true
  })
  const check = app.createRateLimit()
  app.decorate('limitWrites', async (request: FastifyRequest) => {
    // A Redis the cache has given up on would cost every write a command timeout, only to fail open.
    if (!app.cache.available) return
    const result = await check(request)
    if (!result.isAllowed && result.isExceeded) {
      if (writeRefusals.hasSubscribers) writeRefusals.publish({ route: request.routeOptions.url })
      throw new TooManyWritesError(Math.max(1, result.ttlInSeconds))
    }
  })
}, { name: 'write-limit', fastify: '5.x', dependencies: ['cache'] })
