import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { decodeSpans } from './otlp-protobuf.js'

/** A span as the tests read it, whichever encoding it came in. */
export interface ReceivedSpan {
  name: string
  traceId: string
  spanId: string
  parentSpanId: string
  kind: number
  attributes: Record<string, unknown>
}

/** A metric data point as the tests read it. */
export interface ReceivedPoint {
  metric: string
  attributes: Record<string, unknown>
  value: number
}

interface AnyValue { stringValue?: string, intValue?: string | number, doubleValue?: number, boolValue?: boolean }
interface KeyValue { key: string, value: AnyValue }

function attributesOf (list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map(({ key, value }) => [key,
    value.stringValue ?? (value.intValue === undefined ? undefined : Number(value.intValue)) ?? value.doubleValue ?? value.boolValue]))
}

/** OTLP/JSON ids are hex strings; an absent parent is empty. */
const hex = (id: string | undefined): string => id ?? ''

/**
 * A small OTLP/HTTP receiver on 127.0.0.1: /v1/traces in JSON or protobuf, /v1/metrics in JSON.
 * It keeps what it is sent, and answers as a collector does.
 */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = []
  readonly points: ReceivedPoint[] = []
  readonly contentTypes = new Set<string>()
  #server: Server | undefined

  async start (): Promise<string> {
    this.#server = createServer((request, response) => {
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        const body = Buffer.concat(chunks)
        const type = String(request.headers['content-type'] ?? '')
        this.contentTypes.add(`${request.url} ${type}`)
        if (request.url === '/v1/traces') this.#traces(body, type)
        else if (request.url === '/v1/metrics' && type.includes('json')) this.#metrics(JSON.parse(body.toString()))
        response.writeHead(200, { 'content-type': type.includes('json') ? 'application/json' : 'application/x-protobuf' })
        response.end(type.includes('json') ? '{}' : '')
      })
    })
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`
  }

  async stop (): Promise<void> {
    this.#server?.closeAllConnections()
    await new Promise((resolve) => this.#server?.close(resolve))
  }

  #traces (body: Buffer, type: string): void {
    if (!type.includes('json')) {
      this.spans.push(...decodeSpans(body))
      return
    }
    const request = JSON.parse(body.toString()) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Array<{ name: string, traceId: string, spanId: string, parentSpanId?: string, kind: number, attributes?: KeyValue[] }> }> }> }
    for (const resource of request.resourceSpans ?? []) {
      for (const scope of resource.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({ name: span.name, traceId: hex(span.traceId), spanId: hex(span.spanId), parentSpanId: hex(span.parentSpanId), kind: span.kind, attributes: attributesOf(span.attributes) })
        }
      }
    }
  }

  #metrics (request: { resourceMetrics?: Array<{ scopeMetrics?: Array<{ metrics?: Array<Record<string, unknown> & { name: string }> }> }> }): void {
    for (const resource of request.resourceMetrics ?? []) {
      for (const scope of resource.scopeMetrics ?? []) {
        for (const metric of scope.metrics ?? []) {
          const data = (metric.sum ?? metric.gauge ?? metric.histogram) as { dataPoints?: Array<{ attributes?: KeyValue[], asInt?: string | number, asDouble?: number, count?: string | number }> } | undefined
          for (const point of data?.dataPoints ?? []) {
            this.points.push({ metric: metric.name, attributes: attributesOf(point.attributes), value: Number(point.asInt ?? point.asDouble ?? point.count ?? 0) })
          }
        }
      }
    }
  }
}
