import t from 'tap'
import { firestoreHint } from '../../src/plugins/firestore.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { hostPort } from '../helpers/ports.js'
import { emulatorHost } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { timed, waitFor } from '../helpers/wait.js'

const WARNING = 40

t.test('a start-up check held up: /health says starting, not down, and its answer is the first state', async (t) => {
  const proxy = await TcpProxy.start(t, hostPort(emulatorHost()))
  proxy.switch('blackhole')
  const config = testConfig({ firestore: { databaseId: '(default)', emulatorHost: proxy.address, timeoutMs: 5000 } })
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, config, { loggerInstance: logger })
  const { value: health, ms } = await timed(() => app.inject('/health'))
  t.same(health.json(), { status: 'ok', redis: 'embedded', firestore: 'starting' })
  t.ok(ms < 1500, `answered in ${Math.round(ms)} ms (probe bound 800 ms)`)
  // The emulator answers again before FIRESTORE_TIMEOUT_MS: the check succeeds late.
  proxy.switch('forward')
  await waitFor('the start-up check', () => lines().some((l) => l.message === 'firestore answered'), 5000)
  t.same((await app.inject('/health')).json(), { status: 'ok', redis: 'embedded', firestore: 'up' })
  t.same(lines().filter((l) => Number(l.level) >= WARNING).map((l) => l.message), [], 'no warning')
})

t.test('a healthy start: /health is never down while the new client sets up its channel', async (t) => {
  const config = testConfig({ firestore: { databaseId: '(default)', emulatorHost: emulatorHost(), timeoutMs: 5000 } })
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, config, { loggerInstance: logger })
  const states: string[] = []
  await waitFor('the start-up check', async () => {
    states.push(String((await app.inject('/health')).json().firestore))
    return states.at(-1) !== 'starting'
  }, 10_000)
  t.comment(`states: ${states.join(', ')}`)
  t.equal(states.at(-1), 'up')
  t.notOk(states.includes('down'), 'never down')
  t.ok(lines().some((l) => l.message === 'firestore answered'), 'the start-up check is logged')
  t.same(lines().filter((l) => Number(l.level) >= WARNING).map((l) => l.message), [], 'no warning')
})

t.test('each Firestore mistake gets its hint', async (t) => {
  const grpc = (code: number, message: string) => new Error('Firestore could not answer a query', { cause: Object.assign(new Error(message), { code }) })
  const cloud = { projectId: 'my-project', databaseId: 'visits-db' }
  t.match(firestoreHint(grpc(14, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:8681'), { ...cloud, emulatorHost: '127.0.0.1:8681' }),
    /^nothing listens at 127\.0\.0\.1:8681: check FIRESTORE_EMULATOR_HOST/)
  t.match(firestoreHint(Object.assign(new Error('getaddrinfo ENOTFOUND firestor'), { code: 'ENOTFOUND' }), { emulatorHost: 'firestor:8681' }),
    /host of FIRESTORE_EMULATOR_HOST=firestor:8681 is unknown/)
  t.match(firestoreHint(new Error('no answer from the emulator at 127.0.0.1:8681 within 5000 ms'), { emulatorHost: '127.0.0.1:8681' }), /does not answer/)
  t.match(firestoreHint(new Error('Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication'), cloud),
    /^no usable Google credentials: .*gcloud auth application-default login.*FIRESTORE_EMULATOR_HOST/)
  t.match(firestoreHint(grpc(16, 'Request had invalid authentication credentials'), cloud), /^no usable Google credentials/)
  t.match(firestoreHint(new Error('Unable to detect a Project Id in the current environment.'), {}), /set GOOGLE_CLOUD_PROJECT/)
  t.match(firestoreHint(grpc(7, 'Missing or insufficient permissions.'), cloud), /may not use Firestore in project my-project: check GOOGLE_CLOUD_PROJECT.*roles\/datastore\.user/)
  t.match(firestoreHint(grpc(5, 'The database visits-db does not exist for project my-project'), cloud),
    /^no Firestore \(native mode\) database visits-db in project my-project: check FIRESTORE_DATABASE and GOOGLE_CLOUD_PROJECT/)
  t.match(firestoreHint(grpc(9, 'The Cloud Firestore API is not available for Firestore in Datastore Mode database'), cloud), /native mode/)
  t.match(firestoreHint(grpc(14, 'connect ETIMEDOUT 199.36.153.8:443'), cloud), /egress/)
  t.match(firestoreHint(grpc(8, 'Quota exceeded.'), cloud), /see err/)
})
