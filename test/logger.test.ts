import t from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { loggerOptions, traceFields } from '../src/logger.js'

t.test('log lines carry Cloud Logging\'s severity and message', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _e, done) { lines.push(chunk.toString()); done() } })
  const log = pino(loggerOptions({ level: 'debug' }), sink)
  log.warn({ detail: 1 }, 'careful')
  log.fatal('gone')
  const [warn, fatal] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.equal(warn!.severity, 'WARNING')
  t.equal(warn!.message, 'careful')
  t.equal(warn!.detail, 1)
  t.match(warn!.time, /^\d{4}-\d\d-\d\dT/)
  t.notOk('level' in warn!, 'no numeric level')
  t.equal(fatal!.severity, 'CRITICAL')
})

t.test('the trace comes from X-Cloud-Trace-Context', async (t) => {
  const cloud = (value: string) => ({ 'x-cloud-trace-context': value })
  t.same(traceFields(cloud('105445aa7843bc8bf206b12000100000/1;o=1'), 'my-project'), {
    'logging.googleapis.com/trace': 'projects/my-project/traces/105445aa7843bc8bf206b12000100000',
    'logging.googleapis.com/spanId': '0000000000000001',
    'logging.googleapis.com/trace_sampled': true
  })
  t.same(traceFields(cloud('105445AA7843BC8BF206B12000100000'), 'p'), { 'logging.googleapis.com/trace': 'projects/p/traces/105445aa7843bc8bf206b12000100000' })
  t.same(traceFields(cloud('not-a-trace'), 'p'), {})
  t.same(traceFields(cloud('105445aa7843bc8bf206b12000100000/1;o=1'), undefined), {}, 'no project, no trace link')
  t.same(traceFields({}, 'p'), {})
})

t.test('the trace comes from W3C traceparent first', async (t) => {
  const cloudHeader = { 'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/1;o=0' }
  t.same(traceFields({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', ...cloudHeader }, 'p'), {
    'logging.googleapis.com/trace': 'projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736',
    'logging.googleapis.com/spanId': '00f067aa0ba902b7',
    'logging.googleapis.com/trace_sampled': true
  }, 'both sent: traceparent wins')
  t.same(traceFields({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' }, 'p')['logging.googleapis.com/trace_sampled'], false)
  t.same(traceFields({ traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-later' }, 'p')['logging.googleapis.com/trace'],
    'projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736', 'a later version may append fields')
  const fallback = { 'logging.googleapis.com/trace': 'projects/p/traces/105445aa7843bc8bf206b12000100000', 'logging.googleapis.com/spanId': '0000000000000001', 'logging.googleapis.com/trace_sampled': false }
  for (const invalid of [
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'
  ]) {
    t.same(traceFields({ traceparent: invalid, ...cloudHeader }, 'p'), fallback, `invalid ${invalid}: X-Cloud-Trace-Context is used`)
  }
  t.same(traceFields({ traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, undefined), {}, 'no project, no trace link')
})

t.test('an error line carries what Cloud Error Reporting needs; other lines do not pay for it', async (t) => {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _e, done) { lines.push(chunk.toString()); done() } })
  const log = pino(loggerOptions({ level: 'debug', serviceContext: { service: 'visitme', version: 'visitme-00042-abc' } }), sink)
  const cause = Object.assign(new Error('no answer from the emulator at 127.0.0.1:1 within 300 ms'), { code: 14 })
  const err = new Error('Firestore could not store a visit', { cause })
  log.error({ err }, 'repository unavailable')
  log.warn({ err }, 'a warning with an error')
  log.error('an error without an Error')
  const [error, warning, plain] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.equal(error!.severity, 'ERROR')
  t.match(error!.stack_trace, /^Error: Firestore could not store a visit\n {4}at /, 'the stack, as Error Reporting parses it')
  t.match(error!.stack_trace, /\ncaused by: Error: no answer from the emulator at 127\.0\.0\.1:1 within 300 ms\n {4}at /, 'and its cause\'s')
  t.same(error!.serviceContext, { service: 'visitme', version: 'visitme-00042-abc' })
  t.equal((error!.err as { message: string }).message, 'Firestore could not store a visit: no answer from the emulator at 127.0.0.1:1 within 300 ms',
    'what failed, then why, each said once')
  t.notOk('stack_trace' in warning! || 'serviceContext' in warning!, 'a warning is no error report')
  t.notOk('stack_trace' in plain! || 'serviceContext' in plain!, 'no Error, nothing to report')
})

t.test('the app logs through the logger handed in: a route\'s lines carry the request id and trace, and no response pays for request logging', async (t) => {
  const [{ default: Fastify }, { buildApp }, { capturingLogger, testConfig }] = await Promise.all([import('fastify'), import('../src/app.js'), import('./helpers/app.js')])
  /** Listeners on the route's response while it is handled: a logger of Fastify's own adds one to each. */
  const listeners = (reply: { raw: { listenerCount: (event: string) => number } }) => ({ finish: reply.raw.listenerCount('finish'), error: reply.raw.listenerCount('error') })
  const { logger, lines } = capturingLogger()
  const app = await buildApp(testConfig({ projectId: 'p' }), { loggerInstance: logger })
  t.teardown(async () => { await app.close() })
  t.equal(app.log, logger, 'app.log is the logger handed in')
  app.get('/probe', async (request, reply) => {
    request.log.warn('from a route')
    return listeners(reply)
  })
  const bare = Fastify()
  bare.get('/probe', async (_request, reply) => listeners(reply))
  const logging = Fastify({ logger: { level: 'silent' } })
  logging.get('/probe', async (_request, reply) => listeners(reply))
  const counts = []
  for (const server of [app, bare, logging]) {
    const url = await server.listen({ host: '127.0.0.1', port: 0 })
    const answer = await fetch(`${url}/probe`, { headers: { 'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/1;o=1' } })
    counts.push(await answer.json())
  }
  await Promise.all([bare.close(), logging.close()])
  t.same(counts[0], counts[1], `listeners on a response: ${JSON.stringify(counts[0])}, as without a logger`)
  t.notSame(counts[2], counts[1], `(a logger of Fastify's own adds some: ${JSON.stringify(counts[2])})`)
  const line = lines().find((l) => l.message === 'from a route')
  t.ok(line, 'the route\'s line is written to the logger handed in')
  t.equal(line?.level, 40, 'at warn')
  t.match(line?.reqId, /\S/, 'with the request id')
  t.equal(line?.['logging.googleapis.com/trace'], 'projects/p/traces/105445aa7843bc8bf206b12000100000', 'and the request\'s trace')
  t.equal(app.childLoggerFactory, bare.childLoggerFactory, 'Fastify\'s own child logger factory: it checks no logger per request')
})

t.test('a request no route answers logs through the same logger, with its id', async (t) => {
  const [{ buildApp }, { capturingLogger, testConfig }] = await Promise.all([import('../src/app.js'), import('./helpers/app.js')])
  const { logger, lines } = capturingLogger()
  const app = await buildApp(testConfig({ projectId: 'p' }), { loggerInstance: logger })
  t.teardown(async () => { await app.close() })
  app.addHook('onRequest', async (request) => { request.log.warn({ url: request.url }, 'seen') })
  const answer = await app.inject({ url: '/no-such-page', headers: { 'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/1;o=1' } })
  t.equal(answer.statusCode, 404)
  const line = lines().find((l) => l.message === 'seen' && l.url === '/no-such-page')
  t.ok(line, 'the not-found request\'s line is written to the logger handed in')
  t.match(line?.reqId, /\S/, 'with the request id')
  t.equal(line?.['logging.googleapis.com/trace'], 'projects/p/traces/105445aa7843bc8bf206b12000100000', 'and the request\'s trace')
})
