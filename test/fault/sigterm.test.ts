import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Test } from 'tap'
import { emulatorHost, freePort, redisTarget, testConfig, testFirestore, TestRedisServer, uniqueName, waitFor } from '../helper.js'
import { checkLedger, steadyTraffic, storedVisits } from './checks.js'
import { latencySummary, outcomes, startedBetween } from './load.js'

// The built server, as the Docker image runs it; `npm test` builds it first.
const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))
/** Many newcomers: more requests are in the middle of a Firestore round when the signal comes. */
const NEWCOMER_EVERY = 10
const BEFORE_SIGNAL_MS = 1500
/** Well under Cloud Run's 10 s. */
const EXIT_BOUND_MS = 5000
/** Connection errors the load may see once the server is closing: the request never reached a handler. */
const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'socket hang up'])

interface Options {
  redis: { host: string, port: number }
  env?: Record<string, string>
  /** Runs just before the signal (to hold the requests then in flight). */
  beforeSignal?: () => Promise<void>
}

async function sigtermUnderLoad (t: Test, { redis, env = {}, beforeSignal }: Options): Promise<void> {
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

  // Capped; stopped once the process is gone.
  const traffic = steadyTraffic(`http://127.0.0.1:${port}/`, 'sigterm', 15_000, { newcomerEvery: NEWCOMER_EVERY })
  await sleep(BEFORE_SIGNAL_MS)
  await beforeSignal?.()
  const signalled = Date.now()
  const inFlight = traffic.inFlight()
  child.kill('SIGTERM')
  const giveUp = new AbortController()
  const exit = await Promise.race([exited, sleep(9000, undefined, { signal: giveUp.signal }).then(() => undefined, () => undefined)])
  giveUp.abort()
  // Load keeps coming for a moment after the exit: it must be refused.
  await sleep(500)
  traffic.stop()
  const { all: records, arrivals } = await traffic.done

  t.comment(`requests: ${records.length} (${arrivals.length} open-loop arrivals); ${JSON.stringify(outcomes(records))}; in flight at SIGTERM: ${inFlight}`)
  t.ok(exit !== undefined, 'the process exited')
  if (exit === undefined) return
  const took = exit.at - signalled
  t.comment(`exited ${took} ms after SIGTERM with code ${exit.code}`)
  t.equal(exit.code, 0, 'a clean exit: no error, no timeout')
  t.ok(took < EXIT_BOUND_MS, `exited within ${EXIT_BOUND_MS} ms of SIGTERM`)

  const answered = records.filter((r) => r.status !== undefined)
  const failed = records.filter((r) => r.status === undefined)
  const answeredAfter = answered.filter((r) => r.end >= signalled)
  const sentBefore = answeredAfter.filter((r) => r.start < signalled)
  t.comment(`answered after SIGTERM: ${answeredAfter.length} (${sentBefore.length} sent before it, ${latencySummary(sentBefore)})`)
  t.ok(inFlight > 0 && answeredAfter.length > 0, `requests were in flight when the signal came (${inFlight}), and answered after it`)
  t.same(answered.filter((r) => r.status !== 200).map((r) => `${r.seq} ${r.visitor}: ${r.status}`), [], 'every request answered got a 200: no 5xx, no 429')
  t.same(answered.filter((r) => !r.complete || r.problem !== undefined).map((r) => `${r.seq}: ${r.problem ?? 'incomplete body'}`), [],
    'every answer complete: the whole page or JSON of that visitor, never a truncated body')
  t.same(failed.filter((r) => r.start < signalled).map((r) => `${r.seq}: ${r.error}`), [], 'no request sent before the signal failed')
  t.same([...new Set(failed.map((r) => r.error))].filter((e) => !REFUSED.has(e ?? '')), [], 'the others were refused at the connection, never cut mid-answer')
  const afterExit = startedBetween(records, exit.at)
  t.ok(afterExit.length > 0 && afterExit.every((r) => r.error === 'ECONNREFUSED'), `after the exit every request is refused (${afterExit.length})`)

  const counts = checkLedger(t, records, await storedVisits(await testFirestore(t), collection))
  t.comment(`Firestore: ${JSON.stringify(counts)}`)

  const log = lines()
  t.same(log.filter((l) => l.unparsed !== undefined || /unhandled/i.test(JSON.stringify(l))), [], 'no unhandled rejection or exception, every line JSON')
  t.same(log.filter((l) => ['ERROR', 'CRITICAL', 'ALERT', 'EMERGENCY'].includes(String(l.severity))), [], 'nothing logged as an error or fatal')
  t.ok(log.some((l) => l.message === 'closing: no new requests; finishing those in flight'), 'the shutdown was the graceful one')
}

t.test('SIGTERM under sustained load: every request answered is whole and 200, later ones are refused, a clean exit well under 10 s', async (t) => {
  await sigtermUnderLoad(t, { redis: redisTarget() })
})

t.test('SIGTERM while a paused Redis holds the requests in flight: they are answered (bypass) before the exit', async (t) => {
  const redisServer = await TestRedisServer.start(t)
  await sigtermUnderLoad(t, {
    redis: { host: '127.0.0.1', port: redisServer.port },
    env: { REDIS_COMMAND_TIMEOUT_MS: '1000' },
    // Every request from now on waits the command timeout: the signal comes while they do.
    beforeSignal: async () => {
      await redisServer.pause(3000)
      await sleep(200)
    }
  })
})
