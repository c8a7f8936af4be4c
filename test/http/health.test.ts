import t from 'tap'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { freePort, hostPort } from '../helpers/ports.js'
import { emulatorHost, redisReady, testFirestore, testRedis } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { timed } from '../helpers/wait.js'
import { createRedisClient } from '@visitme/memcache'

t.test('embedded: both parts reported as embedded', async (t) => {
  const app = await buildTestApp(t, testConfig())
  const response = await app.inject('/health')
  t.equal(response.statusCode, 200)
  t.same(response.json(), { status: 'ok', redis: 'embedded', firestore: 'embedded' })
})

t.test('security headers, and the stylesheet the CSP allows', async (t) => {
  const app = await buildTestApp(t, testConfig())
  const page = await app.inject('/')
  t.match(page.headers['content-security-policy'], /default-src 'none'/)
  t.match(page.headers['content-security-policy'], /style-src 'self'/)
  t.match(page.headers['content-security-policy'], /form-action 'self'/)
  t.match(page.headers['content-security-policy'], /frame-ancestors 'none'/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.notMatch(page.body, /<style|style=/, 'no inline style for the CSP to allow')
  const css = await app.inject('/site.css')
  t.equal(css.statusCode, 200)
  t.match(css.headers['content-type'], /^text\/css/)
  t.match(css.body, /nav \{/)
})

t.test('real Redis and emulator: both up', async (t) => {
  const config = testConfig()
  const redis = await redisReady(testRedis(t))
  const db = await testFirestore(t)
  const repository = new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 5000 })
  // A new client's first call sets up its channel, which can outlast the probe's 800 ms on a busy machine.
  await repository.ping()
  const app = await buildTestApp(t, config, { redis, firestore: db, repository })
  t.same((await app.inject('/health')).json(), { status: 'ok', redis: 'up', firestore: 'up' })
})

t.test('dependencies down: still 200, states reported, within the probe bound', async (t) => {
  const config = testConfig()
  const deadPort = await freePort()
  const redis = createRedisClient({ host: '127.0.0.1', port: deadPort, commandTimeoutMs: 200, connectTimeoutMs: 200 })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  const proxy = await TcpProxy.start(t, hostPort(emulatorHost()))
  proxy.switch('blackhole')
  const db = await testFirestore(t, proxy.address)
  const repository = new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 300 })
  t.teardown(async () => { proxy.switch('forward'); await repository.drain(30_000) })
  const app = await buildTestApp(t, config, { redis, firestore: db, repository })
  const { value: response, ms } = await timed(() => app.inject('/health'))
  t.equal(response.statusCode, 200, 'a dependency outage is never a failed health check')
  t.same(response.json(), { status: 'ok', redis: 'down', firestore: 'down' })
  t.ok(ms < 1500, `answered in ${Math.round(ms)} ms (probe bound 800 ms)`)
})
