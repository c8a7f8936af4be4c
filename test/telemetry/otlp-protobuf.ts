import type { ReceivedSpan } from './otlp-receiver.js'

/** A protobuf message's fields, by field number: a varint as a bigint, a length-delimited field as its bytes. */
function fields (bytes: Buffer): Map<number, Array<bigint | Buffer>> {
  const found = new Map<number, Array<bigint | Buffer>>()
  let at = 0
  const varint = (): bigint => {
    let value = 0n
    for (let shift = 0n; ; shift += 7n) {
      const byte = bytes[at++]!
      value |= BigInt(byte & 0x7f) << shift
      if ((byte & 0x80) === 0) return value
    }
  }
  while (at < bytes.length) {
    const key = varint()
    const [field, wire] = [Number(key >> 3n), Number(key & 7n)]
    let value: bigint | Buffer
    if (wire === 0) value = varint()
    else if (wire === 2) {
      const length = Number(varint())
      value = bytes.subarray(at, at + length)
      at += length
    } else if (wire === 1) { value = bytes.subarray(at, at + 8); at += 8 } else if (wire === 5) { value = bytes.subarray(at, at + 4); at += 4 } else throw new Error(`wire type ${wire} not expected in OTLP`)
    found.set(field, [...(found.get(field) ?? []), value])
  }
  return found
}

const messages = (map: Map<number, Array<bigint | Buffer>>, field: number): Buffer[] => (map.get(field) ?? []) as Buffer[]

/**
 * The spans of an OTLP ExportTraceServiceRequest in protobuf (opentelemetry/proto/trace/v1/trace.proto):
 * resource_spans = 1 → scope_spans = 2 → spans = 2 → trace_id = 1, span_id = 2, parent_span_id = 4,
 * name = 5, kind = 6, attributes = 9 (KeyValue: key = 1, value = 2 → AnyValue: string_value = 1, int_value = 3).
 */
export function decodeSpans (body: Buffer): ReceivedSpan[] {
  const spans: ReceivedSpan[] = []
  for (const resource of messages(fields(body), 1)) {
    for (const scope of messages(fields(resource), 2)) {
      for (const encoded of messages(fields(scope), 2)) {
        const span = fields(encoded)
        const text = (field: number): string => messages(span, field)[0]?.toString() ?? ''
        const attributes: Record<string, unknown> = {}
        for (const pair of messages(span, 9)) {
          const kv = fields(pair)
          const value = fields(messages(kv, 2)[0] ?? Buffer.alloc(0))
          attributes[messages(kv, 1)[0]!.toString()] = value.has(1) ? messages(value, 1)[0]!.toString() : value.has(3) ? Number(value.get(3)![0]) : undefined
        }
        spans.push({
          name: text(5),
          traceId: messages(span, 1)[0]?.toString('hex') ?? '',
          spanId: messages(span, 2)[0]?.toString('hex') ?? '',
          parentSpanId: messages(span, 4)[0]?.toString('hex') ?? '',
          kind: Number(span.get(6)?.[0] ?? 0),
          attributes
        })
      }
    }
  }
  return spans
}
