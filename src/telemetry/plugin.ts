import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { diag, DiagLogLevel, metrics, trace, TraceFlags, type Span, type SpanContext } from '@opentelemetry/api'
import type { FastifyOtelInstrumentation } from '@fastify/otel'
import type { onSendHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { TraceContext } from '../logger.js'
import { appMetrics } from './metrics.js'
import { traceRedisCommands } from './redis-spans.js'

/** How long close waits for the last spans and metrics to be exported. */
export const FLUSH_MS = 2000

export interface TelemetryPluginOptions {
  instrumentation: FastifyOtelInstrumentation
  /** The span of each request being served, for its cache outcome and its log lines. */
  spans: WeakMap<IncomingMessage, Span>
  /** Exports what is left and stops the SDK. */
  shutdown: () => Promise<void>
}

/** A request's span as a log line names it. */
export function traceContextOf (span: SpanContext): TraceContext {
  return { traceId: span.traceId, spanId: span.spanId, sampled: (span.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED }
}

/**
 * One server span per request (@fastify/otel) named by its route, with the page's cache outcome
 * (`x-cache`) and status; Redis commands as its children; the app's metrics; and at close, the
 * SDK flushed within FLUSH_MS. Registered before any route, so every route is instrumented.
 */
export default fp<TelemetryPluginOptions>(async function telemetry (app, { instrumentation, spans, shutdown }) {
  // The SDK's own complaints (an export that failed) as the app's log lines, not bare console output.
  const log = app.log.child({ component: 'telemetry' })
  diag.setLogger({
    error: (message, ...args) => { log.warn({ args }, message) },
    warn: (message, ...args) => { log.warn({ args }, message) },
    info: (message) => { log.debug(message) },
    debug: () => {},
    verbose: () => {}
  }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true })

  // x-cache is set by the handler or by the route cache's onSend hook: read it in an onSend hook that
  // runs after those and before @fastify/otel's, which ends the span (it appends its own when it sees
  // the route, after this hook has appended this one). Hooks with callbacks: no promise per request.
  const noteCacheOutcome: onSendHookHandler<unknown> = (request, reply, payload, done) => {
    const cache = reply.getHeader('x-cache')
    if (typeof cache === 'string') spans.get(request.raw)?.setAttribute('visitme.cache', cache)
    done(null, payload)
  }
  app.addHook('onRoute', (route) => {
    route.onSend = [...[route.onSend ?? []].flat(), noteCacheOutcome]
  })
  await app.register(instrumentation.plugin())
  app.addHook('onRequest', (request, _reply, done) => {
    const { span } = request.opentelemetry()
    if (span != null) spans.set(request.raw, span)
    done()
  })

  const stopRedis = traceRedisCommands(trace.getTracer('visitme'))
  const { recordRequest, stop: stopMetrics } = appMetrics(app, metrics.getMeter('visitme'))
  app.addHook('onResponse', (request, reply, done) => {
    recordRequest(request, reply)
    done()
  })

  // Registered first, so closed last: the spans of the other plugins' closing are exported too.
  app.addHook('onClose', async () => {
    stopRedis()
    stopMetrics()
    const flushed = await Promise.race([shutdown().then(() => true, (err: unknown) => { log.warn({ err }, 'telemetry not flushed'); return true }), sleep(FLUSH_MS, false)])
    if (!flushed) log.warn(`telemetry not flushed within ${FLUSH_MS} ms: the last spans and metrics are lost`)
  })
}, { name: 'telemetry', fastify: '5.x' })
