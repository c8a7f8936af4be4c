import t from 'tap'
import { freePort } from './helpers/ports.js'
import { TestRedisServer } from './helpers/redis-server.js'
import { startServer } from './helpers/server-process.js'
import { timed, waitFor } from './helpers/wait.js'

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
  const [first, second] = server.lines()
  t.equal(first?.message, 'dependencies in use', 'the first line says which parts are real')
  t.same({ cache: first?.cache, visits: first?.visits }, {
    cache: 'in-process memory (no REDISHOST)',
    visits: 'in-memory, lost on restart (no Firestore configured)'
  })
  t.same({ severity: second?.severity, message: second?.message },
    { severity: 'INFO', message: 'SESSION_SECRET is not set: form cookies are signed with a key of this process' }, 'a short note, after it')
  t.same(server.lines().filter((l) => l.severity !== 'INFO'), [], 'nothing to warn about on a bare machine')
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
    // The write limit would spend one more command timeout on the paused Redis (tested in test/http/write-limit.test.ts).
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

t.test('REDISHOST with a port: start-up stops, naming REDISHOST and suggesting REDISPORT', async (t) => {
  const server = await startServer(t, { REDISHOST: '127.0.0.1:6379' })
  t.equal(await server.exited, 1)
  t.same(server.lines().map((l) => [l.severity, l.message]), [['CRITICAL',
    'Invalid configuration: REDISHOST="127.0.0.1:6379" is invalid: it takes the host alone; the port goes in REDISPORT (REDISPORT=6379)']])
})

t.test('on Cloud Run without SESSION_SECRET: a warning, after the first line', async (t) => {
  const server = await startServer(t, { K_SERVICE: 'visitme', K_REVISION: 'visitme-00001-abc', VISITS_STORE: 'memory' })
  const lines = server.lines()
  t.equal(lines[0]?.message, 'dependencies in use')
  t.same(lines.filter((l) => l.severity === 'WARNING').map((l) => l.message), [
    'SESSION_SECRET is not set: cookies are signed with a key of this instance only, so a form loaded from one instance ' +
    'fails its CSRF check on another; set it from Secret Manager'
  ])
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('.env.example as it stands, with no emulator and no Redis: pages, not 503s', async (t) => {
  const server = await startServer(t, {}, undefined, ['--env-file=.env.example'])
  const page = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { 'user-agent': 'following the README' } })
  t.equal(page.status, 200)
  t.same(await (await fetch(`http://127.0.0.1:${server.port}/health`)).json(), { status: 'ok', redis: 'embedded', firestore: 'embedded' })
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('a refused emulator port: one start-up warning with a hint, pages refused at once naming the host once, trace by traceparent', async (t) => {
  const dead = `127.0.0.1:${await freePort()}`
  const FIRESTORE_TIMEOUT_MS = 4000
  const server = await startServer(t, { FIRESTORE_EMULATOR_HOST: dead, GOOGLE_CLOUD_PROJECT: 'demo-visitme', FIRESTORE_TIMEOUT_MS: String(FIRESTORE_TIMEOUT_MS) })
  const unreachable = () => server.lines().filter((l) => /^firestore unreachable/.test(String(l.message)))
  await waitFor('the start-up warning', () => unreachable().length > 0, FIRESTORE_TIMEOUT_MS)
  t.equal(server.lines()[0]?.message, 'dependencies in use', 'the first line says which parts are real')
  t.equal(server.lines()[0]?.visits, `firestore emulator at ${dead}, collection visits`)
  t.match(unreachable()[0], {
    severity: 'WARNING',
    firestore: `the emulator at ${dead}`,
    hint: `nothing listens at ${dead}: check FIRESTORE_EMULATOR_HOST against the emulator's --host-port, and that the emulator runs`,
    err: { message: `Firestore could not answer a query: connection refused by ${dead}` }
  })

  const { value: page, ms } = await timed(() => fetch(`http://127.0.0.1:${server.port}/`, {
    headers: { 'user-agent': 'ua', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }
  }))
  t.equal(page.status, 503)
  t.ok(ms < 1000, `refused in ${Math.round(ms)} ms, not after FIRESTORE_TIMEOUT_MS (${FIRESTORE_TIMEOUT_MS} ms)`)
  await waitFor('the error line', () => server.lines().some((l) => l.message === 'repository unavailable'))
  const logged = server.lines().find((l) => l.message === 'repository unavailable') as Record<string, unknown> & { err?: { message?: string } }
  t.equal(logged.severity, 'ERROR')
  t.equal(logged.err?.message, `Firestore could not read the latest visits: connection refused by ${dead}`, 'what failed, where and why, once')
  t.match(logged.stack_trace, /^RepositoryUnavailableError: Firestore could not read the latest visits\n {4}at .*\ncaused by: Error: connection refused by /s,
    'the stack for Cloud Error Reporting')
  t.same(logged.serviceContext, { service: 'visitme' })
  t.equal(logged['logging.googleapis.com/trace'], 'projects/demo-visitme/traces/4bf92f3577b34da6a3ce929d0e0e4736', 'correlated by traceparent')
  t.same(await (await fetch(`http://127.0.0.1:${server.port}/health`)).json(), { status: 'ok', redis: 'embedded', firestore: 'down' })
  t.equal(unreachable().length, 1, 'one warning at start-up; failed pages log errors of their own')

  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0, 'a clean exit, though the client still retries what was given up on')
})
