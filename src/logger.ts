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

type Bindings = Record<string, unknown>

/**
 * A request's logger, made only when the request logs something: most requests log nothing,
 * and a pino child per request (bindings serialized, trace header parsed) costs the hot path.
 */
class LazyRequestLogger {
  #logger: FastifyBaseLogger | undefined

  constructor (
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: Parameters<FastifyBaseLogger['child']>[1],
    private readonly traceHeader: string | string[] | undefined,
    private readonly projectId: string | undefined
  ) {}

  get #real (): FastifyBaseLogger {
    this.#logger ??= this.parent.child({ ...this.bindings, ...traceFields(this.traceHeader, this.projectId) }, this.options)
    return this.#logger
  }

  get level (): string { return this.#real.level }
  set level (level: string) { this.#real.level = level }
  fatal (...args: Parameters<FastifyBaseLogger['fatal']>): void { this.#real.fatal(...args) }
  error (...args: Parameters<FastifyBaseLogger['error']>): void { this.#real.error(...args) }
  warn (...args: Parameters<FastifyBaseLogger['warn']>): void { this.#real.warn(...args) }
  info (...args: Parameters<FastifyBaseLogger['info']>): void { this.#real.info(...args) }
  debug (...args: Parameters<FastifyBaseLogger['debug']>): void { this.#real.debug(...args) }
  trace (...args: Parameters<FastifyBaseLogger['trace']>): void { this.#real.trace(...args) }
  silent (...args: Parameters<FastifyBaseLogger['silent']>): void { this.#real.silent(...args) }
  child (...args: Parameters<FastifyBaseLogger['child']>): FastifyBaseLogger { return this.#real.child(...args) }
}

/** Fastify's per-request child logger, with the request's trace attached; made on first use. */
export function traceChildLogger (projectId: string | undefined): NonNullable<FastifyServerOptions<RawServerDefault>['childLoggerFactory']> {
  return function (logger: FastifyBaseLogger, bindings, options, rawReq: IncomingMessage) {
    return new LazyRequestLogger(logger, bindings, options, rawReq.headers['x-cloud-trace-context'], projectId) as unknown as FastifyBaseLogger
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
