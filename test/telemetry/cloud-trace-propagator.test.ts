import { context, defaultTextMapGetter, defaultTextMapSetter, trace, TraceFlags } from '@opentelemetry/api'
import t from 'tap'
import { CloudTraceContextPropagator } from '../../src/telemetry/cloud-trace-propagator.js'

const propagator = new CloudTraceContextPropagator()
const TRACE = '105445aa7843bc8bf206b12000100000'

t.test('X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS becomes the remote parent, its decimal span id in hex', async (t) => {
  const extracted = trace.getSpanContext(propagator.extract(context.active(), { 'x-cloud-trace-context': `${TRACE}/1;o=1` }, defaultTextMapGetter))
  t.same(extracted, { traceId: TRACE, spanId: '0000000000000001', traceFlags: TraceFlags.SAMPLED, isRemote: true })
  const unsampled = trace.getSpanContext(propagator.extract(context.active(), { 'x-cloud-trace-context': `${TRACE.toUpperCase()}/18446744073709551615` }, defaultTextMapGetter))
  t.same(unsampled, { traceId: TRACE, spanId: 'ffffffffffffffff', traceFlags: TraceFlags.NONE, isRemote: true }, 'upper-case trace id, the largest span id, no option')
})

t.test('a header without a span id, with a zero id, or malformed leaves the context as it was', async (t) => {
  for (const header of [TRACE, `${TRACE}/0;o=1`, `${'0'.repeat(32)}/5;o=1`, 'not-a-trace/1', `${TRACE}/12x`]) {
    t.equal(trace.getSpanContext(propagator.extract(context.active(), { 'x-cloud-trace-context': header }, defaultTextMapGetter)), undefined, header)
  }
})

t.test('inject writes the header back in its decimal form', async (t) => {
  const carrier: Record<string, string> = {}
  const span = trace.wrapSpanContext({ traceId: TRACE, spanId: '00000000000004d2', traceFlags: TraceFlags.SAMPLED })
  propagator.inject(trace.setSpan(context.active(), span), carrier, defaultTextMapSetter)
  t.same(carrier, { 'x-cloud-trace-context': `${TRACE}/1234;o=1` })
  t.same(propagator.fields(), ['x-cloud-trace-context'])
})
