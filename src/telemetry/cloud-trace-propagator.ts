import { isSpanContextValid, trace, TraceFlags, type Context, type TextMapGetter, type TextMapPropagator, type TextMapSetter } from '@opentelemetry/api'
import { fromCloudTraceContext } from '../logger.js'

const HEADER = 'x-cloud-trace-context'

/**
 * Google's `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS` (span id in decimal), for callers
 * that send it without `traceparent` (Google's own front ends, older clients). Listed before the
 * W3C propagator, so a `traceparent` sent along wins.
 */
export class CloudTraceContextPropagator implements TextMapPropagator {
  inject (context: Context, carrier: unknown, setter: TextMapSetter): void {
    const span = trace.getSpanContext(context)
    if (span === undefined || !isSpanContextValid(span)) return
    setter.set(carrier, HEADER, `${span.traceId}/${BigInt(`0x${span.spanId}`).toString()};o=${span.traceFlags & TraceFlags.SAMPLED}`)
  }

  extract (context: Context, carrier: unknown, getter: TextMapGetter): Context {
    const value = getter.get(carrier, HEADER)
    const header = Array.isArray(value) ? value[0] : value
    const parsed = header === undefined ? undefined : fromCloudTraceContext(header)
    if (parsed?.spanId === undefined) return context
    const span = {
      traceId: parsed.traceId,
      spanId: parsed.spanId,
      // o=1: the caller records the trace; the default (parent-based) sampler then records it here too.
      traceFlags: parsed.sampled === true ? TraceFlags.SAMPLED : TraceFlags.NONE,
      isRemote: true
    }
    return isSpanContextValid(span) ? trace.setSpanContext(context, span) : context
  }

  fields (): string[] {
    return [HEADER]
  }
}
