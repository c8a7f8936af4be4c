import type { IncomingMessage } from 'node:http'
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest } from 'fastify'
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
  /** Names the service (and revision) in error lines, as Cloud Error Reporting groups them. */
  serviceContext?: { service: string, version?: string }
}

/** The stack, then each cause's: what failed and why, in one trace. */
function stackWithCauses (err: Error): string {
  let stack = err.stack ?? String(err)
  let cause = err.cause
  for (let depth = 0; cause instanceof Error && depth < 5; depth++, cause = cause.cause) stack += `\ncaused by: ${cause.stack ?? String(cause)}`
  return stack
}

/** Pino's number for `error`: from there on a line is an error report. */
const ERROR_LEVEL = 50

function requestGist (request: FastifyRequest): object {
  return { method: request.method, url: request.url, host: request.host, remoteAddress: request.ip, remotePort: request.socket?.remotePort }
}

function replyGist (reply: FastifyReply): object {
  return { statusCode: reply.statusCode }
}

/** Fastify's log lines name a request and a reply by these fields: their gist, not the objects. */
const serializers = { req: requestGist, res: replyGist }

export function loggerOptions ({ level, pretty = false, serviceContext = { service: 'visitme' } }: LoggerSettings): LoggerOptions {
  if (pretty) {
    return {
      level,
      messageKey: 'message',
      serializers,
      transport: { target: 'pino-pretty', options: { messageKey: 'message', translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }
    }
  }
  return {
    level,
    messageKey: 'message',
    base: undefined,
    timestamp: stdTimeFunctions.isoTime,
    serializers,
    formatters: {
      level: (label) => ({ severity: SEVERITY[label] ?? 'DEFAULT' })
    },
    // Cloud Error Reporting picks up an entry with a stack in `stack_trace` and groups it by `serviceContext`.
    // Only error lines with an Error pay for it; the others pass unchanged.
    mixin: (object, level) => {
      const err = (object as { err?: unknown }).err
      if (level < ERROR_LEVEL || !(err instanceof Error)) return {}
      return { stack_trace: stackWithCauses(err), serviceContext }
    }
  }
}

const TRACE_CONTEXT = /^([0-9a-f]{32})(?:\/(\d{1,20}))?(?:;o=([01]))?$/i
/** W3C Trace Context: version-traceid-parentid-flags; version ff is invalid, later versions may append fields. */
const TRACEPARENT = /^(?!ff)([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZEROS = /^0+$/

/** A request's place in a trace, as a log line names it. */
export interface TraceContext { traceId: string, spanId?: string, sampled?: boolean }

function fromTraceparent (header: string): TraceContext | undefined {
  const match = TRACEPARENT.exec(header.trim())
  if (match === null) return undefined
  const [, version, traceId, spanId, flags, rest] = match
  // Version 00 has exactly four fields; all-zero ids are invalid.
  if ((version === '00' && rest !== undefined) || ZEROS.test(traceId!) || ZEROS.test(spanId!)) return undefined
  return { traceId: traceId!, spanId, sampled: (Number.parseInt(flags!, 16) & 1) === 1 }
}

export function fromCloudTraceContext (header: string): TraceContext | undefined {
  const match = TRACE_CONTEXT.exec(header.trim())
  if (match === null) return undefined
  const [, traceId, spanId, sampled] = match
  return {
    traceId: traceId!.toLowerCase(),
    // This header carries the span id in decimal; Cloud Logging wants 16 hex digits.
    spanId: spanId === undefined ? undefined : BigInt(spanId).toString(16).padStart(16, '0').slice(-16),
    sampled: sampled === undefined ? undefined : sampled === '1'
  }
}

type Headers = Record<string, string | string[] | undefined>

/**
 * The Cloud Logging fields that tie a log line to its request's trace: from the W3C
 * `traceparent` header when it is valid, else from `X-Cloud-Trace-Context:
 * TRACE_ID/SPAN_ID;o=OPTIONS`. Cloud Run passes both on.
 */
export function traceFields (headers: Headers, projectId: string | undefined, traced?: TraceContext): Record<string, unknown> {
  if (projectId === undefined) return {}
  const { traceparent, 'x-cloud-trace-context': cloud } = headers
  const context = traced ??
    (typeof traceparent === 'string' ? fromTraceparent(traceparent) : undefined) ??
    (typeof cloud === 'string' ? fromCloudTraceContext(cloud) : undefined)
  if (context === undefined) return {}
  const fields: Record<string, unknown> = { 'logging.googleapis.com/trace': `projects/${projectId}/traces/${context.traceId}` }
  if (context.spanId !== undefined) fields['logging.googleapis.com/spanId'] = context.spanId
  if (context.sampled !== undefined) fields['logging.googleapis.com/trace_sampled'] = context.sampled
  return fields
}

/**
 * A request's logger, made only when the request logs something: most requests log nothing,
 * and a pino child per request (bindings serialized, trace header parsed) costs the hot path.
 */
class LazyRequestLogger {
  #logger: FastifyBaseLogger | undefined

  constructor (private readonly logs: RequestLogs, private readonly request: FastifyRequest) {}

  get #real (): FastifyBaseLogger {
    this.#logger ??= this.logs.childFor(this.request)
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

/** The span a request is served under, when telemetry traces it (src/telemetry/). */
export type TraceOf = (request: IncomingMessage) => TraceContext | undefined

/**
 * How Fastify logs requests when it has no logger of its own (the app's is `root`).
 *
 * Each request's logger is a child of `root` with the request's id and trace attached, made on
 * first use, and handed to the request and its reply in incomingRequest(): Fastify calls it for
 * every request it builds (routed, not found, a bad URL, a framework error) before any hook runs.
 * A childLoggerFactory would do the same at a cost on every request: Fastify checks what a custom
 * factory returns, method by method, each time (README, Performance: what a cached page saves).
 *
 * Cloud Run already writes a log entry for every request, so Fastify's own per-request lines
 * would only double the bill: only failed requests are logged.
 */
export class RequestLogs extends LogController {
  readonly #root: FastifyBaseLogger
  readonly #projectId: string | undefined
  readonly #traceOf: TraceOf | undefined

  constructor (root: FastifyBaseLogger, projectId: string | undefined, traceOf?: TraceOf) {
    super()
    this.#root = root
    this.#projectId = projectId
    this.#traceOf = traceOf
  }

  override incomingRequest (request: FastifyRequest, reply: FastifyReply): void {
    const log = new LazyRequestLogger(this, request) as unknown as FastifyBaseLogger
    request.log = log
    reply.log = log
  }

  /** The request's logger itself: made by its LazyRequestLogger the first time it logs. */
  childFor ({ id, raw }: FastifyRequest): FastifyBaseLogger {
    return this.#root.child({ [this.requestIdLogLabel]: id, ...traceFields(raw.headers, this.#projectId, this.#traceOf?.(raw)) })
  }

  override requestCompleted (...args: Parameters<LogController['requestCompleted']>): void {
    if (args[0] !== undefined && args[0] !== null) super.requestCompleted(...args)
  }
}
