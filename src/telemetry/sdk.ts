import type { IncomingMessage } from 'node:http'
import type { Span } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { startNodeSdk } from '@opentelemetry/sdk-node'
import type { TelemetryConfig } from '../config.js'
import type { Telemetry } from './index.js'
import { CloudTraceContextPropagator } from './cloud-trace-propagator.js'
import plugin, { traceContextOf } from './plugin.js'

/**
 * The OpenTelemetry SDK, configured by the standard OTEL_* variables (endpoints, protocol,
 * headers, sampler, intervals), with what this service fixes: its name and revision, the
 * propagators Cloud Run's callers use, no log export (logs go to stdout for Cloud Logging),
 * and no export of a signal without an endpoint.
 */
export function startSdk (config: TelemetryConfig): Telemetry {
  const instrumentation = new FastifyOtelInstrumentation({
    // One span per request, named by its route; Redis and Firestore spans directly under it.
    instrumentHooks: false,
    instrumentHandler: false,
    requestHook: (span, request) => { span.updateName(`${request.method} ${request.routeOptions.url ?? 'unmatched'}`) }
  })
  const sdk = startNodeSdk({
    logLevel: 'warn',
    propagators: [new CloudTraceContextPropagator(), new W3CTraceContextPropagator()],
    resourceAttributes: {
      'service.name': config.serviceName,
      ...(config.serviceVersion === undefined ? {} : { 'service.version': config.serviceVersion })
    },
    logRecordProcessors: [],
    ...(config.traces ? {} : { spanProcessors: [] }),
    ...(config.metrics ? {} : { metricReaders: [] }),
    instrumentations: [instrumentation]
  })
  const spans = new WeakMap<IncomingMessage, Span>()
  return {
    register: async (app) => { await app.register(plugin, { instrumentation, spans, shutdown: sdk.shutdown }) },
    traceOf: (request) => {
      const span = spans.get(request)
      return span === undefined ? undefined : traceContextOf(span.spanContext())
    }
  }
}
