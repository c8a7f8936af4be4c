import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { Config } from '../../src/config.js'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { freePort } from '../helpers/ports.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { testFirestore } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { timed, waitFor } from '../helpers/wait.js'

const COMMAND_TIMEOUT_MS = 300
// A fail-open answer may take the command timeout plus Firestore round trips; generous for a busy machine.
const BOUND_MS = COMMAND_TIMEOUT_MS + 1500

async function setup (t: Test, redisPort: number): Promise<{ app: FastifyInstance, repository: FirestoreVisitsRepository, messages: () => unknown[], config: Config }> {
  const config = testConfig({ redis: { host: '127.0.0.1', port: redisPort, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 500 } })
  const db = await testFirestore(t)
  const repository = new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 5000 })
  // Timed requests below measure the cache's bound, not a new Firestore client's channel set-up.
  await repository.ping()
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, config, { firestore: db, repository, loggerInstance: logger })
  return { app, repository, config, messages: () => lines().map((l) => l.message) }
}

async function visit (app: FastifyInstance, userAgent: string): Promise<{ status: number, cache: unknown, ms: number }> {
  const { value, ms } = await timed(() => app.inject({ method: 'GET', url: '/', headers: { 'user-agent': userAgent } }))
  return { status: value.statusCode, cache: value.headers['x-cache'], ms }
}

t.test('Redis stopped mid-test: pages fail open, refreshes store nothing, and the client comes back by itself', async (t) => {
  const server = await TestRedisServer.start(t)
  const { app, repository, messages } = await setup(t, server.port)
  const stored = async () => (await repository.latest(100)).length

  t.equal((await visit(app, 'A')).cache, 'miss')
  t.equal((await visit(app, 'A')).cache, 'hit')

  await server.stop()
  await waitFor('the client to notice', () => app.redis.status !== 'ready')
  for (let i = 0; i < 5; i++) {
    const page = await visit(app, 'A')
    t.equal(page.status, 200)
    t.equal(page.cache, 'bypass')
    t.ok(page.ms < BOUND_MS, `answered in ${Math.round(page.ms)} ms while Redis is down`)
  }
  t.equal(await stored(), 1, 'refreshing while the cache is down stores no visit')
  t.equal((await visit(app, 'B')).cache, 'bypass')
  t.equal(await stored(), 2, 'a new visitor is still recorded')
  t.equal((await visit(app, 'B')).cache, 'bypass')
  t.equal(await stored(), 2)

  await server.restart()
  await waitFor('the client to reconnect', () => app.redis.status === 'ready', 5000)
  t.equal((await visit(app, 'B')).cache, 'miss', 'the empty cache is filled again')
  t.equal((await visit(app, 'B')).cache, 'hit')
  t.equal(await stored(), 2, 'and still no duplicate visit')

  const log = messages()
  t.equal(log.filter((m) => m === 'redis unreachable; requests are served without the cache until it is back').length, 1,
    'one log line for the outage, not one per request')
  t.equal(log.filter((m) => m === 'redis reconnected').length, 1, 'one for the recovery')
})

t.test('Redis paused: each request is bounded by the command timeout, then the circuit skips Redis', async (t) => {
  const server = await TestRedisServer.start(t)
  const { app, repository } = await setup(t, server.port)

  t.equal((await visit(app, 'C')).cache, 'miss')
  await server.pause(2500)
  // Nothing can change in a paused Redis: the in-process copy still answers for it.
  const refresh = await visit(app, 'C')
  t.same([refresh.status, refresh.cache], [200, 'hit'], 'a refresh is served from the in-process copy')
  t.ok(refresh.ms < COMMAND_TIMEOUT_MS, `without waiting for Redis (${Math.round(refresh.ms)} ms)`)
  const pages = []
  for (let i = 0; i < 6; i++) pages.push(await visit(app, `new ${i}`))
  for (const page of pages) {
    t.equal(page.status, 200)
    t.equal(page.cache, 'bypass')
    t.ok(page.ms < BOUND_MS, `a new visitor answered in ${Math.round(page.ms)} ms while Redis is paused`)
  }
  t.ok(pages.at(-1)!.ms < COMMAND_TIMEOUT_MS, 'once the circuit is open, Redis is not waited for')
  t.equal((await repository.latest(100)).length, 7, 'every new visitor stored, once')

  await waitFor('the cache to answer again', async () => (await visit(app, 'C')).cache === 'hit', 6000)
  t.pass('hits again after the pause ends')
})

t.test('a visit stored while the cache could not be written invalidates the cached list once Redis answers', async (t) => {
  const server = await TestRedisServer.start(t)
  const { app, repository } = await setup(t, server.port)

  t.equal((await visit(app, 'Y')).cache, 'miss')
  await server.pause(1500)
  t.equal((await visit(app, 'X')).cache, 'bypass')
  t.equal((await repository.latest(100)).length, 2, 'X is stored; the cached list, kept by Redis, still says [Y]')
  await waitFor('Redis to answer again', async () => await server.answers(), 6000)
  await waitFor('the circuit to close', async () => {
    const page = await visit(app, 'Y')
    return page.cache !== 'bypass'
  }, 6000)
  const visits = await repository.latest(100)
  t.same(visits.map((v) => v.visitor), ['127.0.0.0: Y', '127.0.0.0: X', '127.0.0.0: Y'], 'Y after X is a new visit, not a stale hit')
})

t.test('a Redis that accepts connections but never answers: start-up waits only the connect timeout', async (t) => {
  const server = await TestRedisServer.start(t)
  const proxy = await TcpProxy.start(t, { host: '127.0.0.1', port: server.port })
  proxy.switch('blackhole')
  const started = performance.now()
  const { app, repository } = await setup(t, Number(proxy.address.split(':')[1]))
  const took = performance.now() - started
  t.ok(took < 2000, `start-up took ${Math.round(took)} ms (connect timeout 500 ms)`)
  const page = await visit(app, 'E')
  t.equal(page.status, 200)
  t.equal(page.cache, 'bypass')
  t.ok(page.ms < BOUND_MS, `answered in ${Math.round(page.ms)} ms`)
  t.equal((await repository.latest(100)).length, 1)
})

t.test('nothing listening at REDISHOST: start-up and pages stay fast', async (t) => {
  const port = await freePort()
  const started = performance.now()
  const { app, repository } = await setup(t, port)
  t.ok(performance.now() - started < 2000, 'start-up does not wait on the missing cache beyond its connect timeout')
  const first = await visit(app, 'D')
  t.equal(first.status, 200)
  t.equal(first.cache, 'bypass')
  t.ok(first.ms < BOUND_MS, `answered in ${Math.round(first.ms)} ms`)
  t.equal((await visit(app, 'D')).cache, 'bypass')
  t.equal((await repository.latest(100)).length, 1)
  t.same((await app.inject('/health')).json(), { status: 'ok', redis: 'down', firestore: 'up' })
})
