import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { hostPort } from '../helpers/ports.js'
import { emulatorHost, redisTarget, testFirestore } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { checkLedger, inspectVisitsBody, isNewcomer, listen, SCHEDULING_MARGIN_MS, steadyTraffic, storedVisits, watchScheduling } from './checks.js'
import { finishedBefore, latencySummary, outcomes, percentile, runLoad, startedBetween } from './load.js'

const FIRESTORE_TIMEOUT_MS = 800
const BASELINE_MS = 1500
const BLACKHOLE_MS = 1500
const RESET_MS = 1500
/**
 * After the network is back: how long until the service stores visits again (the Firestore
 * client's reconnect backoff, 1 s growing 1.6 times per failure with 20% jitter, a few seconds
 * after a cut this long, plus the 2 s the open circuit waits), and how long it is then watched.
 */
const RESUME_MS = 10_000
const AFTER_RESUME_MS = 1500

t.test('Firestore cut off under sustained load: bounded 503s (page and JSON), no other 5xx, no visit acknowledged unstored, service resumes', async (t) => {
  const collection = testConfig().visits.collection
  const proxy = await TcpProxy.start(t, hostPort(emulatorHost()))
  const db = await testFirestore(t, proxy.address)
  // A new client's first call sets up its channel: not part of what is measured.
  await db.collection(collection).limit(1).get()
  const repository = new FirestoreVisitsRepository(db, { collection, timeoutMs: FIRESTORE_TIMEOUT_MS })
  // Before the client is terminated, let what it still retries finish against the restored emulator.
  t.teardown(async () => { proxy.switch('forward'); await repository.drain(30_000) })
  const config = testConfig({
    visits: { collection, limit: 10, shards: 1, cacheTtlSeconds: 3600, ipMode: 'truncated' },
    redis: { ...redisTarget(), commandTimeoutMs: 300, connectTimeoutMs: 500 },
    // One request's Firestore budget, as FIRESTORE_TIMEOUT_MS sets it.
    firestore: { databaseId: '(default)', emulatorHost: proxy.address, timeoutMs: FIRESTORE_TIMEOUT_MS }
  })
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, config, { repository, firestore: db, loggerInstance: logger })
  const url = await listen(app)
  // What was stored is read straight from the emulator, not through the proxy.
  const direct = await testFirestore(t)

  // Warm up (JIT, templates, connections) so the baseline is the service's steady state.
  const warmUp = (await steadyTraffic(url, 'warm-up', 500).done).all
  // Stopped below once the service has resumed; the duration only caps it.
  const scheduling = watchScheduling(t)
  const traffic = steadyTraffic(url, 'firestore', BASELINE_MS + BLACKHOLE_MS + RESET_MS + RESUME_MS + AFTER_RESUME_MS)
  await sleep(BASELINE_MS)
  // A newcomer just before the cut: the regular visitor's next reload is then a visit to
  // store, which the cut fails, so the outage meets that visitor's reloads too, not only newcomers.
  const lastBefore = await runLoad({ url, clients: 1, maxRequests: 1, plan: () => ({ visitor: 'newcomer before the cut' }), inspect: inspectVisitsBody }).done
  const cut = Date.now()
  proxy.switch('blackhole')
  await sleep(BLACKHOLE_MS / 2)
  const health = await fetch(new URL('/health', url))
  t.equal(health.status, 200, 'the process stays healthy while Firestore is away')
  await sleep(BLACKHOLE_MS / 2)
  proxy.switch('reset')
  await sleep(RESET_MS)
  const restored = Date.now()
  proxy.switch('forward')
  const servedAgain = () => traffic.records().filter((r) => r.start >= restored && isNewcomer(r) && r.status === 200)
  await waitFor('a newcomer to be served again', () => servedAgain().length > 0, RESUME_MS)
    .catch((err: Error) => t.fail(err.message))
  const resumed = Math.min(...servedAgain().map((r) => r.end))
  await sleep(AFTER_RESUME_MS)
  traffic.stop()
  const { all: records, arrivals } = await traffic.done
  const all = [...warmUp, ...lastBefore, ...records]

  t.comment(`requests: ${records.length} (${arrivals.length} open-loop arrivals) +${warmUp.length} warm-up; ${JSON.stringify(outcomes(records))}`)
  t.same(all.filter((r) => r.status !== 200 && r.status !== 503).map((r) => `${r.seq} ${r.visitor}: ${r.status ?? r.error}`), [],
    'every request answered, with 200 or 503 only: no other 5xx, no connection error')
  t.same(all.filter((r) => !r.complete || r.problem !== undefined).map((r) => `${r.seq} ${r.status}: ${r.problem ?? 'incomplete body'}`), [],
    'every body complete: the page or JSON of that visitor, or the 503 page or JSON with Retry-After: 5')

  const baseline = finishedBefore(records, cut)
  const hitP99 = percentile(baseline.filter((r) => r.headers['x-cache'] === 'hit').map((r) => r.ms), 99)
  const bound = FIRESTORE_TIMEOUT_MS + hitP99
  const unavailable = records.filter((r) => r.status === 503)
  t.comment(`baseline: ${latencySummary(baseline)}; hits p99 ${hitP99.toFixed(1)} ms`)
  t.comment(`during the cut: ${latencySummary(startedBetween(records, cut, restored))}; ${JSON.stringify(outcomes(startedBetween(records, cut, restored)))}`)
  t.comment(`503s: ${latencySummary(unavailable)}; bound ${bound.toFixed(0)} ms = FIRESTORE_TIMEOUT_MS ${FIRESTORE_TIMEOUT_MS} + baseline hit p99`)
  t.same(finishedBefore(all, cut).filter((r) => r.status !== 200).map((r) => `${r.seq}: ${r.status ?? r.error}`), [], 'all 200 before the cut')
  t.ok(unavailable.some((r) => r.accept === 'application/json') && unavailable.some((r) => r.accept === undefined),
    'the cut was felt: 503s as JSON and as the page')
  const slow = unavailable.filter((r) => scheduling.netMs(r) > bound + SCHEDULING_MARGIN_MS)
    .map((r) => `${r.arrival ? 'arrival' : `client ${r.client}`} ${r.visitor}: sent ${r.start - cut} ms after the cut, took ${Math.round(r.ms)} ms`)
  t.same(slow, [], `every 503 within the Firestore timeout plus a cache hit's p99 (${bound.toFixed(0)} ms + ${scheduling.describe()})`)
  t.ok(unavailable.filter((r) => r.ms < FIRESTORE_TIMEOUT_MS / 4).length > 0, 'some 503s are immediate: the circuit opened')
  const regularDuring = startedBetween(records, cut, restored).filter((r) => !isNewcomer(r))
  t.comment(`the regular visitor during the cut: ${JSON.stringify(outcomes(regularDuring))}`)

  t.comment(`service resumed ${resumed - restored} ms after the network came back`)
  t.ok(resumed - restored <= RESUME_MS, `service resumed within ${RESUME_MS} ms`)
  const last = startedBetween(records, resumed + 500)
  t.same(last.filter((r) => r.status !== 200).map((r) => `${r.seq}: ${r.status ?? r.error}`), [], 'and every request is 200 again from half a second after that')

  const counts = checkLedger(t, all, await storedVisits(direct, collection), { storing: [200, 503] })
  t.comment(`Firestore: ${JSON.stringify(counts)} (storedForUnanswered: writes given up on that landed later, allowed)`)
  const errors = lines().filter((l) => Number(l.level) >= 50)
  t.same([...new Set(errors.map((l) => l.message))], errors.length === 0 ? [] : ['repository unavailable'],
    'the only errors logged are the 503s')
})
