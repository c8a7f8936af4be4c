import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { FormClient } from '../helpers/form-client.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { redisReady, testRedis } from '../helpers/services.js'
import { timed } from '../helpers/wait.js'

const visit = async (app: FastifyInstance, userAgent: string, headers: Record<string, string> = {}) =>
  await app.inject({ url: '/', headers: { 'user-agent': userAgent, ...headers } })

t.test('a client over its write budget gets 429 with a reason; reads and cache hits never count', async (t) => {
  const app = await buildTestApp(t, testConfig({ rateLimitWrites: 3, trustProxyHops: 1 }), { redis: await redisReady(testRedis(t)) })
  const statuses = []
  for (const ua of ['a', 'b', 'c']) statuses.push((await visit(app, ua)).statusCode)
  t.same(statuses, [200, 200, 200], 'three visits stored')

  const page = await visit(app, 'd')
  t.equal(page.statusCode, 429, 'the fourth visit stored from this address in a minute is refused')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<h1>Too many changes<\/h1>/)
  t.match(page.body, /Too many changes from this address; try again in \d+ s\./)
  const retryAfter = Number(page.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`)
  t.equal(page.headers['cache-control'], 'no-store')

  const api = await visit(app, 'e', { accept: 'application/json' })
  t.equal(api.statusCode, 429)
  t.match(api.json(), { statusCode: 429, error: 'Too Many Requests', message: /try again in \d+ s/ })

  const again = await visit(app, 'c')
  t.equal(again.statusCode, 200, 'the newest visitor seeing the list again is a cache hit, not a write')
  t.equal(again.headers['x-cache'], 'hit')
  t.equal((await app.inject('/guestbook')).statusCode, 200, 'reads are never limited')
  t.equal((await visit(app, 'f', { 'x-forwarded-for': '203.0.113.9' })).statusCode, 200, 'another address has its own budget')
})

t.test('visits and posted forms share one budget, counted only for valid posts', async (t) => {
  const app = await buildTestApp(t, testConfig({ rateLimitWrites: 2 }), { redis: await redisReady(testRedis(t)) })
  const browser = new FormClient(app)
  t.equal((await visit(app, 'visitor')).statusCode, 200, 'write 1: a visit')
  const forged = await app.inject({
    method: 'POST', url: '/sign', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'content=forged'
  })
  t.equal(forged.statusCode, 403, 'a post without a CSRF token is refused before it counts')
  await browser.get('/guestbook')
  t.equal((await browser.post('/sign', { content: 'hello' })).statusCode, 303, 'write 2: a greeting')
  await browser.get('/tasks')
  const refused = await browser.post('/tasks', { name: 'one too many' })
  t.equal(refused.statusCode, 429, 'write 3: a task, over the budget')
  t.match(refused.body, /Too many changes/)
  t.notMatch((await browser.get('/tasks')).body, /one too many/, 'and nothing was stored')
})

t.test('without Redis each process keeps its own budget', async (t) => {
  const app = await buildTestApp(t, testConfig({ rateLimitWrites: 1 }))
  t.equal((await visit(app, 'a')).statusCode, 200)
  t.equal((await visit(app, 'b')).statusCode, 429)
})

t.test('the budget fails open: with Redis down writes are not limited, and pages stay fast', async (t) => {
  const redis = await TestRedisServer.start(t)
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, testConfig({
    rateLimitWrites: 1,
    redis: { host: '127.0.0.1', port: redis.port, commandTimeoutMs: 300, connectTimeoutMs: 500 }
  }), { loggerInstance: logger })
  t.equal((await visit(app, 'a')).statusCode, 200)
  t.equal((await visit(app, 'b')).statusCode, 429, 'the budget holds while Redis answers')
  await redis.stop()
  for (const ua of ['c', 'd', 'e']) {
    const { value: page, ms } = await timed(async () => await visit(app, ua))
    t.equal(page.statusCode, 200, `visit ${ua} stored with Redis down`)
    t.ok(ms < 1000, `in ${Math.round(ms)} ms`)
  }
  t.notOk(lines().some((l) => l.severity === 'ERROR'), 'a budget that cannot be counted is no error')
})
