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
  t.same(traceFields('105445aa7843bc8bf206b12000100000/1;o=1', 'my-project'), {
    'logging.googleapis.com/trace': 'projects/my-project/traces/105445aa7843bc8bf206b12000100000',
    'logging.googleapis.com/spanId': '0000000000000001',
    'logging.googleapis.com/trace_sampled': true
  })
  t.same(traceFields('105445AA7843BC8BF206B12000100000', 'p'), { 'logging.googleapis.com/trace': 'projects/p/traces/105445aa7843bc8bf206b12000100000' })
  t.same(traceFields('not-a-trace', 'p'), {})
  t.same(traceFields('105445aa7843bc8bf206b12000100000/1;o=1', undefined), {}, 'no project, no trace link')
  t.same(traceFields(undefined, 'p'), {})
})
