import t from 'tap'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { hostPort } from '../helpers/ports.js'
import { emulatorHost, testFirestore } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { timed, waitFor } from '../helpers/wait.js'

t.test('Firestore unreachable: a bounded 503, a clear page or JSON, the trace in the log; then service resumes', async (t) => {
  const config = testConfig({ projectId: 'my-project' })
  const proxy = await TcpProxy.start(t, hostPort(emulatorHost()))
  const db = await testFirestore(t, proxy.address)
  // A new client's first call sets up its channel, which can outlast the short timeout below on a busy machine.
  await db.collection(config.visits.collection).limit(1).get()
  const repository = new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 800 })
  // Before the client is terminated, let what it still retries finish against the restored emulator.
  t.teardown(async () => { proxy.switch('forward'); await repository.drain(30_000) })
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, config, { repository, loggerInstance: logger })
  const get = (headers: Record<string, string> = {}) =>
    timed(() => app.inject({ method: 'GET', url: '/', headers: { 'user-agent': 'ua', ...headers } }))

  t.equal((await get()).value.statusCode, 200)
  proxy.switch('reset')

  const { value: page, ms } = await get({ 'x-cloud-trace-context': '105445aa7843bc8bf206b12000100000/7;o=1', 'user-agent': 'other' })
  t.equal(page.statusCode, 503)
  t.ok(ms < 2000, `answered in ${Math.round(ms)} ms`)
  t.equal(page.headers['retry-after'], '5')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<h1>Temporarily unavailable<\/h1>/)
  t.match(page.body, /The database is not answering right now\./)

  const { value: api } = await get({ accept: 'application/json', 'user-agent': 'other' })
  t.equal(api.statusCode, 503)
  t.same(api.json(), { statusCode: 503, error: 'Service Unavailable', message: 'The database is not answering right now.' })

  const logged = lines().find((l) => l.message === 'repository unavailable')
  t.ok(logged, 'the failure is logged')
  t.equal(logged?.['logging.googleapis.com/trace'], 'projects/my-project/traces/105445aa7843bc8bf206b12000100000')
  t.equal(logged?.['logging.googleapis.com/spanId'], '0000000000000007')
  t.match(logged?.err, { message: /Firestore could not/ })

  // Three failures open the circuit: Firestore is not called, and the answer is immediate.
  await get({ 'user-agent': 'other' })
  const { value: fast, ms: fastMs } = await get({ 'user-agent': 'other' })
  t.equal(fast.statusCode, 503)
  t.ok(fastMs < 400, `with the circuit open: ${Math.round(fastMs)} ms, not the 800 ms timeout`)
  t.equal((await app.inject('/health')).statusCode, 200, 'the process itself stays healthy')

  proxy.switch('forward')
  await waitFor('Firestore to serve again', async () => (await get({ 'user-agent': 'other' })).value.statusCode === 200, 20_000)
  const visits = await repository.latest(100)
  t.same(visits.map((v) => v.visitor), ['127.0.0.0: other', '127.0.0.0: ua'], 'one visit for the new visitor, none from the failed tries')
})
