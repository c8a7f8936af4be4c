import t from 'tap'
import { startServer, TestRedisServer } from './helper.js'

t.test('a bad variable stops start-up with one message naming it', async (t) => {
  const server = await startServer(t, { REDISHOST: '10.0.0.3', REDISPORT: 'abc' })
  t.equal(await server.exited, 1)
  const lines = server.lines()
  t.equal(lines.length, 1, 'one line, no stack trace')
  t.equal(lines[0]!.severity, 'CRITICAL')
  t.equal(lines[0]!.message, 'Invalid configuration: REDISPORT="abc" is invalid: must be integer')
})

t.test('with nothing configured it serves on embedded defaults', async (t) => {
  const server = await startServer(t, {})
  const page = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { 'user-agent': 'bare machine' } })
  t.equal(page.status, 200)
  t.match(await page.text(), /127\.0\.0\.0: bare machine/)
  t.same(await (await fetch(`http://127.0.0.1:${server.port}/health`)).json(), { status: 'ok', redis: 'embedded', firestore: 'embedded' })
  const oversized = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { 'x-padding': 'x'.repeat(20_000) } })
  t.equal(oversized.status, 431, 'oversized headers are refused before any handler runs')
  const startup = server.lines().find((l) => l.message === 'dependencies in use')
  t.same({ cache: startup?.cache, visits: startup?.visits }, {
    cache: 'in-process memory (no REDISHOST)',
    visits: 'in-memory, lost on restart (no Firestore configured)'
  }, 'start-up says which parts are real')
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('SIGTERM: the request in flight completes, the process exits cleanly and well under 10 s', async (t) => {
  const redisServer = await TestRedisServer.start(t)
  const server = await startServer(t, {
    REDISHOST: '127.0.0.1',
    REDISPORT: String(redisServer.port),
    REDIS_COMMAND_TIMEOUT_MS: '1500',
    FIRESTORE_TIMEOUT_MS: '2000',
    VISITS_STORE: 'memory',
    // The write limit would spend one more command timeout on the paused Redis (tested in test/app/write-limit.test.ts).
    RATE_LIMIT_WRITES: '0'
  })
  const url = `http://127.0.0.1:${server.port}/`
  t.equal((await fetch(url, { headers: { 'user-agent': 'first' } })).headers.get('x-cache'), 'miss')

  // A paused Redis holds the next request for the command timeout: it is in flight when SIGTERM comes.
  await redisServer.pause(3000)
  const inFlight = fetch(url, { headers: { 'user-agent': 'second' } })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const signalled = performance.now()
  server.child.kill('SIGTERM')

  const response = await inFlight
  t.equal(response.status, 200, 'the request in flight was answered')
  t.equal(response.headers.get('x-cache'), 'bypass')
  t.match(await response.text(), /second/)
  t.equal(await server.exited, 0, 'a clean exit: no error, no timeout')
  const took = performance.now() - signalled
  t.ok(took < 5000, `exited ${Math.round(took)} ms after SIGTERM`)
  await t.rejects(fetch(url), 'no new connections after close')

  const lines = server.lines()
  t.ok(lines.every((l) => typeof l.severity === 'string' && typeof l.message === 'string'), 'every line is Cloud Logging JSON')
  t.ok(lines.some((l) => l.message === 'closing: finishing the requests in flight'))
  t.notOk(lines.some((l) => l.severity === 'WARNING' && /redis/.test(String(l.message))), 'closing its own Redis connection is no outage')
})

t.test('a port already taken: one fatal line, exit code 1', async (t) => {
  const first = await startServer(t, {})
  const second = await startServer(t, {}, first.port)
  t.equal(await second.exited, 1)
  const fatal = second.lines().filter((l) => l.severity === 'CRITICAL')
  t.equal(fatal.length, 1)
  t.equal(fatal[0]?.message, `cannot listen on 127.0.0.1:${first.port}`)
  first.child.kill('SIGTERM')
  t.equal(await first.exited, 0)
})
