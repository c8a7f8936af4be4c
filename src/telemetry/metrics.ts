import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Meter } from '@opentelemetry/api'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { BreakerState } from '@visitme/memcache'
import { writeRefusals } from '../http/write-limit.js'
import { databaseCalls, type DatabaseCallMessage } from '../plugins/bounded-calls.js'

/** A gauge's number for a breaker: 0 closed, 1 trying again, 2 open (calls refused). */
const BREAKER_LEVEL: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 }

/**
 * The app's instruments. The cache's and the breakers' are read when the SDK collects (nothing on
 * the request path); the database's and the write limit's come from the channels those modules
 * publish on; the request duration is recorded once a response is sent (`recordRequest`).
 * Returns the request recorder and the unsubscribe.
 */
export function appMetrics (app: FastifyInstance, meter: Meter): { recordRequest: (request: FastifyRequest, reply: FastifyReply) => void, stop: () => void } {
  // Counted by the cache library per namespace in this process (app.cache.counters), never reset: cumulative counters.
  for (const [name, field, description] of [
    ['visitme.cache.hits', 'hits', 'Cache reads that found a value'],
    ['visitme.cache.misses', 'misses', 'Cache reads that found nothing (a store error counts as a miss too)'],
    ['visitme.cache.errors', 'errors', 'Cache calls the store failed (or a value that could not be read)']
  ] as const) {
    meter.createObservableCounter(name, { description, unit: '{read}' }).addCallback((result) => {
      if (!app.hasDecorator('cache')) return
      for (const namespace of app.cache.namespaces()) result.observe(app.cache.counters(namespace)[field], { 'visitme.cache.namespace': namespace })
    })
  }

  meter.createObservableGauge('visitme.breaker.state', {
    description: 'Circuit breaker of a backend: 0 closed, 1 half-open (one call tries it), 2 open (calls refused at once)'
  }).addCallback((result) => {
    // A Redis not connected is refused at once as an open circuit is, whatever the breaker's own state.
    if (app.hasDecorator('cache')) result.observe(app.cache.available ? BREAKER_LEVEL[app.cache.breakerState] : BREAKER_LEVEL.open, { 'visitme.backend': 'redis' })
    if (app.hasDecorator('firestoreCalls')) result.observe(BREAKER_LEVEL[app.firestoreCalls.breakerState], { 'visitme.backend': 'firestore' })
    if (app.hasDecorator('datastoreCalls')) result.observe(BREAKER_LEVEL[app.datastoreCalls.breakerState], { 'visitme.backend': 'datastore' })
  })

  const requests = meter.createHistogram('http.server.request.duration', { description: 'Time to answer a request', unit: 's' })
  const recordRequest = (request: FastifyRequest, reply: FastifyReply): void => {
    const cache = reply.getHeader('x-cache')
    requests.record(reply.elapsedTime / 1000, {
      'http.request.method': request.method,
      // The route's pattern, never the URL: one series per route, not per visitor.
      'http.route': request.routeOptions.url ?? 'unmatched',
      'http.response.status_code': reply.statusCode,
      ...(typeof cache === 'string' ? { 'visitme.cache': cache } : {})
    })
  }

  const database = meter.createHistogram('visitme.database.call.duration', { description: 'Time of one database call, as the app bounds it', unit: 's' })
  const onCall = (message: unknown): void => {
    const call = message as DatabaseCallMessage
    database.record(call.durationMs / 1000, {
      'visitme.database': call.database.toLowerCase(),
      'visitme.database.operation': call.what,
      'visitme.database.outcome': call.outcome
    })
  }
  subscribe(databaseCalls.name, onCall)

  const refusals = meter.createCounter('visitme.write_limit.refusals', { description: 'Writes refused (429) by the per-client write limit', unit: '{request}' })
  const onRefusal = (message: unknown): void => {
    refusals.add(1, { 'http.route': (message as { route?: string }).route ?? 'unmatched' })
  }
  subscribe(writeRefusals.name, onRefusal)

  return {
    recordRequest,
    stop: () => {
      unsubscribe(databaseCalls.name, onCall)
      unsubscribe(writeRefusals.name, onRefusal)
    }
  }
}
