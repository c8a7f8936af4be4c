import type { FastifyInstance } from 'fastify'
import type { TelemetryConfig } from '../config.js'
import type { TraceOf } from '../logger.js'

/** OpenTelemetry, started: what the app wires in (src/app.ts). */
export interface Telemetry {
  /** Registers, on the app itself and before any route: request and Redis spans, the metrics, the flush at close. */
  register: (app: FastifyInstance) => Promise<void>
  /** The span a request is served under, for its log lines. */
  traceOf: TraceOf
}

/**
 * Starts the OpenTelemetry SDK (src/telemetry/sdk.ts) for the signals that have an OTLP endpoint.
 * Imported only here and only then: with telemetry off, no OpenTelemetry module is loaded and no
 * hook is added. Start it before the app is built, so the Firestore client finds its tracer.
 */
export async function startTelemetry (config: TelemetryConfig): Promise<Telemetry> {
  const { startSdk } = await import('./sdk.js')
  return startSdk(config)
}
