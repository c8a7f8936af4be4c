import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startServer } from '../helpers/server-process.js'
import { emulatorHost, redisTarget, uniqueName } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'
import { freePort } from '../helpers/ports.js'
import { FLUSH_MS } from '../../src/telemetry/plugin.js'
import { OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js'

// The built server (dist/server.js) exporting to a receiver on 127.0.0.1, as it would to a collector.
const SERVER = 2
const CLIENT = 3
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'
/** The span names of the Firestore client's built-in tracing. */
const FIRESTORE_SPAN = /^(DocumentReference|CollectionReference|Query|AggregationQuery|Transaction|Batch)\.|^(BatchGetDocuments|RunQuery|RunAggregationQuery)$/

async function receiver (t: Test): Promise<{ receiver: OtlpReceiver, url: string }> {
  const receiver = new OtlpReceiver()
  const url = await receiver.start()
  t.teardown(async () => { await receiver.stop() })
  return { receiver, url }
}

/** Exports soon after the fact, so the test waits little. */
const PROMPT_EXPORT = { OTEL_BSP_SCHEDULE_DELAY: '50', OTEL_METRIC_EXPORT_INTERVAL: '300', OTEL_METRIC_EXPORT_TIMEOUT: '300' }

function backend () {
  const redis = redisTarget()
  return {
    REDISHOST: redis.host,
    REDISPORT: String(redis.port),
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    GOOGLE_CLOUD_PROJECT: 'demo-visitme',
    CACHE_NAMESPACE: uniqueName('otel'),
    VISITS_COLLECTION: uniqueName('visits')
  }
}

t.test('http/json: the request span continues the caller\'s trace, Redis and Firestore spans sit under it, metrics and log lines agree', async (t) => {
  const { receiver: otlp, url } = await receiver(t)
  const env = { ...backend(), ...PROMPT_EXPORT, OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', RATE_LIMIT_WRITES: '1' }
  const server = await startServer(t, env)
  const base = `http://127.0.0.1:${server.port}`
  t.match(server.lines()[0], { message: 'dependencies in use', telemetry: 'traces and metrics to OTLP' }, 'the first line says telemetry is on')

  const first = await fetch(`${base}/`, { headers: { traceparent: `00-${TRACE}-${CALLER_SPAN}-01`, 'user-agent': 'first', accept: 'application/json' } })
  t.equal(first.status, 200)
  t.equal(first.headers.get('x-cache'), 'miss')
  // Another visitor is a second write from 127.0.0.1: over RATE_LIMIT_WRITES=1.
  const refused = await fetch(`${base}/`, { headers: { traceparent: `00-${TRACE.replace(/^4/, '5')}-${CALLER_SPAN}-01`, 'user-agent': 'second' } })
  t.equal(refused.status, 429)
  // Google's own header alone: trace id, decimal span id, o=1.
  const cloudTrace = '6' + TRACE.slice(1)
  const cloud = await fetch(`${base}/sign`, { method: 'POST', body: '{', headers: { 'content-type': 'application/json', 'x-cloud-trace-context': `${cloudTrace}/12345;o=1` } })
  t.equal(cloud.status, 400, 'a body that does not parse: a client error, logged')

  await waitFor('the spans of the three requests', () => otlp.spans.filter((s) => s.kind === SERVER).length >= 3, 10_000)
  const request = otlp.spans.find((s) => s.kind === SERVER && s.traceId === TRACE)!
  t.match(request, {
    name: 'GET /',
    parentSpanId: CALLER_SPAN,
    attributes: { 'http.route': '/', 'http.request.method': 'GET', 'http.response.status_code': 200, 'visitme.cache': 'miss' }
  }, 'one server span for the page, a child of the caller\'s span, with route, status and cache outcome')

  await waitFor('the Firestore spans', () => otlp.spans.some((s) => s.traceId === TRACE && FIRESTORE_SPAN.test(s.name)), 10_000)
  const ofRequest = otlp.spans.filter((s) => s.traceId === TRACE && s !== request)
  const redis = ofRequest.filter((s) => s.attributes['db.system.name'] === 'redis')
  t.ok(redis.length > 0, `Redis commands are spans of the request (${redis.map((s) => s.name).join(', ')})`)
  t.ok(redis.every((s) => s.kind === CLIENT && s.parentSpanId === request.spanId), 'each a client span, child of the request span')
  const byId = new Map(otlp.spans.map((s) => [s.spanId, s]))
  const rootOf = (span: ReceivedSpan): ReceivedSpan => {
    let at = span
    while (byId.has(at.parentSpanId)) at = byId.get(at.parentSpanId)!
    return at
  }
  const firestore = ofRequest.filter((s) => FIRESTORE_SPAN.test(s.name))
  t.ok(firestore.length > 0 && firestore.every((s) => rootOf(s) === request), `the Firestore client's spans descend from the request span (${[...new Set(firestore.map((s) => s.name))].join(', ')})`)

  t.match(otlp.spans.find((s) => s.kind === SERVER && s.traceId === cloudTrace), {
    parentSpanId: (12345).toString(16).padStart(16, '0'),
    attributes: { 'http.route': '/sign', 'http.response.status_code': 400 }
  }, 'X-Cloud-Trace-Context is honoured when no traceparent comes with it')
  t.match(otlp.spans.find((s) => s.kind === SERVER && s.traceId.startsWith('5')), { attributes: { 'http.response.status_code': 429 } })

  // The 400 is logged (as every client error but 429), under the span exported for it.
  const badRequest = otlp.spans.find((s) => s.kind === SERVER && s.traceId === cloudTrace)!
  await waitFor('the 400 log line', () => server.lines().some((l) => l['logging.googleapis.com/trace'] !== undefined), 5000)
  t.match(server.lines().find((l) => l['logging.googleapis.com/trace'] !== undefined), {
    'logging.googleapis.com/trace': `projects/demo-visitme/traces/${cloudTrace}`,
    'logging.googleapis.com/spanId': badRequest.spanId,
    'logging.googleapis.com/trace_sampled': true
  }, 'the log line names the trace and the server span, as Cloud Logging groups them')

  const point = (metric: string, attributes: Record<string, unknown>) =>
    otlp.points.find((p) => p.metric === metric && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
  const namespace = `${env.CACHE_NAMESPACE}/visits`
  await waitFor('the metrics', () => point('visitme.write_limit.refusals', {}) !== undefined && point('visitme.database.call.duration', {}) !== undefined, 10_000)
  t.ok(point('visitme.cache.misses', { 'visitme.cache.namespace': namespace }), 'cache misses per namespace')
  t.ok(point('visitme.cache.hits', { 'visitme.cache.namespace': namespace }), 'cache hits per namespace')
  t.ok(point('visitme.cache.errors', { 'visitme.cache.namespace': namespace }), 'cache errors per namespace')
  t.equal(point('visitme.breaker.state', { 'visitme.backend': 'redis' })?.value, 0, 'the Redis breaker, closed')
  t.equal(point('visitme.breaker.state', { 'visitme.backend': 'firestore' })?.value, 0, 'the Firestore breaker, closed')
  t.ok(point('http.server.request.duration', { 'http.route': '/', 'http.response.status_code': 200, 'visitme.cache': 'miss' }), 'request duration by route and cache outcome')
  t.ok(point('visitme.database.call.duration', { 'visitme.database': 'firestore', 'visitme.database.operation': 'store a visit', 'visitme.database.outcome': 'ok' }), 'Firestore call latency')
  t.equal(point('visitme.write_limit.refusals', { 'http.route': '/' })?.value, 1, 'the write limit\'s refusal')

  // Close flushes: a request just before SIGTERM is exported.
  await fetch(`${base}/health`, { headers: { traceparent: `00-${'7' + TRACE.slice(1)}-${CALLER_SPAN}-01` } })
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
  t.ok(otlp.spans.some((s) => s.traceId === '7' + TRACE.slice(1)), 'the last span is flushed at close')
})

t.test('http/protobuf to a traces endpoint alone: spans arrive in protobuf, no metrics are sent', async (t) => {
  const { receiver: otlp, url } = await receiver(t)
  const server = await startServer(t, { ...PROMPT_EXPORT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${url}/v1/traces`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' })
  t.match(server.lines()[0], { telemetry: 'traces to OTLP' })
  const page = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { traceparent: `00-${TRACE}-${CALLER_SPAN}-01` } })
  t.equal(page.status, 200)
  await waitFor('the request span', () => otlp.spans.length > 0, 10_000)
  t.match(otlp.spans, [{ name: 'GET /', kind: SERVER, traceId: TRACE, parentSpanId: CALLER_SPAN, attributes: { 'http.route': '/', 'http.response.status_code': 200 } }])
  t.same([...otlp.contentTypes], ['/v1/traces application/x-protobuf'], 'protobuf, and nothing sent to /v1/metrics')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('grpc to a collector that is not there: pages are served, and shutdown gives up on the flush in time', async (t) => {
  const closed = await freePort()
  const server = await startServer(t, { ...PROMPT_EXPORT, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })
  for (let i = 0; i < 3; i++) t.equal((await fetch(`http://127.0.0.1:${server.port}/`)).status, 200)
  const stopping = Date.now()
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
  // The flush is bounded by FLUSH_MS (2 s); the rest is the ordinary close. Generous: the machine is shared.
  t.ok(Date.now() - stopping < FLUSH_MS + 4000, `closed in ${Date.now() - stopping} ms`)
})

t.test('a collector that never answers: shutdown gives up on the flush after FLUSH_MS, and says so', async (t) => {
  const silent = createServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    silent.closeAllConnections()
    await new Promise((resolve) => silent.close(resolve))
  })
  const server = await startServer(t, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })
  t.equal((await fetch(`http://127.0.0.1:${server.port}/`)).status, 200)
  const stopping = Date.now()
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
  const took = Date.now() - stopping
  t.ok(took >= FLUSH_MS - 100 && took < FLUSH_MS + 4000, `closed in ${took} ms, not after the exporter's own 10 s timeout`)
  t.ok(server.lines().some((l) => l.message === `telemetry not flushed within ${FLUSH_MS} ms: the last spans and metrics are lost`), 'one warning says what was lost')
})

t.test('a Redis that is not there shows as an open breaker', async (t) => {
  const { receiver: otlp, url } = await receiver(t)
  const closed = await freePort()
  const server = await startServer(t, { ...PROMPT_EXPORT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${url}/v1/metrics`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', REDISHOST: '127.0.0.1', REDISPORT: String(closed) })
  t.equal((await fetch(`http://127.0.0.1:${server.port}/`)).status, 200, 'the page is served without the cache')
  await waitFor('the breaker gauge', () => otlp.points.some((p) => p.metric === 'visitme.breaker.state'), 10_000)
  t.same(otlp.points.filter((p) => p.metric === 'visitme.breaker.state').map((p) => [p.attributes['visitme.backend'], p.value])[0], ['redis', 2])
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})
