import type { IncomingMessage } from 'node:http'
import { LogController, type FastifyBaseLogger, type FastifyServerOptions, type RawServerDefault } from 'fastify'
import { stdTimeFunctions, type LoggerOptions } from 'pino'

// Cloud Logging reads `severity` and `message`; pino's numeric level means nothing to it.
const SEVERITY: Record<string, string> = {
  trace: 'DEBUG',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARNING',
  error: 'ERROR',
  fatal: 'CRITICAL'
}

export interface LoggerSettings {
  level: string
  /** Human-readable output: for a terminal, never for Cloud Run. */
  pretty?: boolean
  /** Needed to turn a trace id into the resource name Cloud Logging links. */
  projectId?: string
}

export function loggerOptions ({ level, pretty = false }: LoggerSettings): LoggerOptions {
  if (pretty) {
    return {
      level,
      messageKey: 'message',
      transport: { target: 'pino-pretty', options: { messageKey: 'message', translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }
    }
  }
  return {
    level,
    messageKey: 'message',
    base: undefined,
    timestamp: stdTimeFunctions.isoTime,
    formatters: {
      level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' })
    }
  }
}

const TRACE_CONTEXT = /^([0-9a-f]{32})(?:\/(\d{1,20}))?(?:;o=([01]))?$/i

/**
 * The Cloud Logging fields that tie a log line to its request's trace, read from
 * the `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS` header Cloud Run sets.
 */
export function traceFields (header: string | string[] | undefined, projectId: string | undefined): Record<string, unknown> {
  if (projectId === undefined || typeof header !== 'string') return {}
  const match = TRACE_CONTEXT.exec(header.trim())
  if (match === null) return {}
  const [, traceId, spanId, sampled] = match
  const fields: Record<string, unknown> = {
    'logging.googleapis.com/trace': `projects/${projectId}/traces/${traceId!.toLowerCase()}`
  }
  // The header carries the span id in decimal; Cloud Logging wants 16 hex digits.
  if (spanId !== undefined) fields['logging.googleapis.com/spanId'] = BigInt(spanId).toString(16).padStart(16, '0').slice(-16)
  if (sampled !== undefined) fields['logging.googleapis.com/trace_sampled'] = sampled === '1'
  return fields
}

/** Fastify's per-request child logger, with the request's trace attached. */
export function traceChildLogger (projectId: string | undefined): NonNullable<FastifyServerOptions<RawServerDefault>['childLoggerFactory']> {
  return function (logger: FastifyBaseLogger, bindings, options, rawReq: IncomingMessage) {
    return logger.child({ ...bindings, ...traceFields(rawReq.headers['x-cloud-trace-context'], projectId) }, options)
  }
}

/**
 * Cloud Run already writes a log entry for every request, so Fastify's own
 * per-request lines would only double the bill: keep just the failed ones.
 */
export class ErrorsOnlyLogController extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (...args: Parameters<LogController['requestCompleted']>): void {
    if (args[0] !== undefined && args[0] !== null) super.requestCompleted(...args)
  }
}
