import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Test } from 'tap'
import { testConfig } from '../helpers/app.js'
import { freePort } from '../helpers/ports.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { emulatorHost, redisTarget, uniqueName } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'
import { shutdownUnderLoad, type ServerUnderTest } from './shutdown.js'

// The built server, as the Docker image runs it; `npm test` builds it first.
const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))
/** Well under Cloud Run's 10 s. */
const EXIT_BOUND_MS = 5000

/** The built server as a process of its own, on a free port, with visits in a collection of its own. */
async function spawnServer (t: Test, redis: { host: string, port: number }, env: Record<string, string> = {}): Promise<ServerUnderTest> {
  const began = Date.now()
  const port = await freePort()
  const collection = testConfig().visits.collection
  const child = spawn(process.execPath, [serverJs], {
    env: {
      PATH: process.env.PATH ?? '',
      METADATA_SERVER_DETECTION: 'none',
      HOST: '127.0.0.1',
      PORT: String(port),
      REDISHOST: redis.host,
      REDISPORT: String(redis.port),
      CACHE_NAMESPACE: uniqueName('sigterm'),
      FIRESTORE_EMULATOR_HOST: emulatorHost(),
      VISITS_COLLECTION: collection,
      // This test is about shutdown: one client IP sends thousands of visits.
      RATE_LIMIT_WRITES: '0',
      ...env
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit').then(([code]) => ({ code: code as number | null, at: Date.now() }))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const lines = () => output.split('\n').filter((l) => l !== '').map((l) => {
    try { return JSON.parse(l) as Record<string, unknown> } catch { return { unparsed: l } }
  })
  await waitFor('the server to listen', () => {
    if (child.exitCode !== null) throw new Error(`the server exited at start-up: ${output}`)
    return lines().some((l) => typeof l.message === 'string' && l.message.startsWith('Server listening'))
  }, 15_000)
  t.comment(`listening ${Date.now() - began} ms after the spawn`)
  return { url: `http://127.0.0.1:${port}/`, collection, signal: () => { child.kill('SIGTERM') }, exited, lines }
}

t.test('SIGTERM under sustained load on kept-alive connections: every request answered is whole and 200, later ones are refused, a clean exit well under 10 s', async (t) => {
  await shutdownUnderLoad(t, await spawnServer(t, redisTarget()), { exitBoundMs: EXIT_BOUND_MS })
})

// 16 clients that open a connection per request: several connections always wait in the kernel's
// accept queue. Closing the port at once reset them (5 to 13 requests sent before the signal
// failed with ECONNRESET).
t.test('SIGTERM under load of a new connection per request: those waiting to be accepted are answered, not reset', async (t) => {
  await shutdownUnderLoad(t, await spawnServer(t, redisTarget()), { fresh: true, clients: 16, exitBoundMs: EXIT_BOUND_MS })
})

// Node counts a new connection as busy until its request arrives, so server.close() waited for a
// connection that sent nothing (a proxy that connects ahead, a client whose event loop is busy):
// the process was killed by the shutdown timeout (8 s, exit code 1) and every request still in
// its accept queue was lost with it.
t.test('SIGTERM with a connection open that has sent nothing: it is not waited for', async (t) => {
  await shutdownUnderLoad(t, await spawnServer(t, redisTarget()), { fresh: true, clients: 16, silentConnection: true, exitBoundMs: EXIT_BOUND_MS })
})

t.test('SIGTERM while a paused Redis holds the requests in flight: they are answered (bypass) before the exit', async (t) => {
  const redisServer = await TestRedisServer.start(t)
  await shutdownUnderLoad(t, await spawnServer(t, { host: '127.0.0.1', port: redisServer.port }, { REDIS_COMMAND_TIMEOUT_MS: '1000' }), {
    exitBoundMs: EXIT_BOUND_MS,
    // Every request from now on waits the command timeout: the signal comes while they do.
    beforeSignal: async () => {
      await redisServer.pause(3000)
      await sleep(200)
    }
  })
})
