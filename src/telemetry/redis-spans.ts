import { tracingChannel } from 'node:diagnostics_channel'
import { context, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api'

/** What ioredis publishes about a command on its `ioredis:command` tracing channel. */
interface CommandMessage {
  command: string
  database: number
  serverAddress: string
  serverPort?: number
  error?: unknown
}

/**
 * A client span for every Redis command sent while a request's span is open, from the tracing
 * channel ioredis publishes: no patching of the client. Commands outside a request (the stats
 * flush, announcements) are not traced: a root span per command would bury the requests.
 * Returns the unsubscribe.
 */
export function traceRedisCommands (tracer: Tracer): () => void {
  const channel = tracingChannel<string, CommandMessage>('ioredis:command')
  const spans = new WeakMap<CommandMessage, Span>()
  const handlers = {
    start (message: CommandMessage) {
      const parent = context.active()
      // A timer set during a request (the stats flush) runs in its context after it ended: not its work.
      // An unsampled request's span records nothing either.
      if (trace.getSpan(parent)?.isRecording() !== true) return
      spans.set(message, tracer.startSpan(message.command.toUpperCase(), {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system.name': 'redis',
          'db.operation.name': message.command.toUpperCase(),
          'db.namespace': String(message.database),
          'server.address': message.serverAddress,
          ...(message.serverPort === undefined ? {} : { 'server.port': message.serverPort })
        }
      }, parent))
    },
    error (message: CommandMessage) {
      const span = spans.get(message)
      if (span === undefined) return
      const err = message.error
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
      if (err instanceof Error) span.recordException(err)
    },
    asyncEnd (message: CommandMessage) {
      spans.get(message)?.end()
      spans.delete(message)
    },
    end () {},
    asyncStart () {}
  }
  channel.subscribe(handlers)
  return () => { channel.unsubscribe(handlers) }
}
