import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { redisTarget, testFirestore } from '../helpers/services.js'
import {
  checkLedger, inspectVisitsBody, listen, REGULAR, regularWithNewcomers, SCHEDULING_MARGIN_MS, storedVisits, watchScheduling, type Scheduling
} from './checks.js'
import { finishedBefore, hitRatio, latencySummary, outcomes, percentile, runLoad, startedBetween, type LoadRecord } from './load.js'
import { SilentProxy } from './silent-proxy.js'

const COMMAND_TIMEOUT_MS = 300
/** The service's own definition of a dead connection: silent this long after a command (src/plugins/redis.ts). */
const SOCKET_TIMEOUT_MS = Math.max(4 * COMMAND_TIMEOUT_MS, 2000)
/**
 * Once another instance has stored a visit, how long this instance may keep answering the
 * visitor it replaced as a cache hit: the announcement's trip when the network is up, and
 * when it is silent, until the connection counts as dead.
 */
const STALE_BOUND_MS = SOCKET_TIMEOUT_MS + 250
const BASELINE_MS = 1000
const SILENT_MS = 4000
const AFTER_MS = 2000

/**
 * For each newcomer instance B stored, the regular visitor's hits on A that began more than
 * STALE_BOUND_MS (plus the event loop's stalls meanwhile) after B answered, with no stored visit of the regular visitor on A begun
 * since the newcomer's request: pages that claimed the regular visitor was still the newest
 * when A could not know it.
 */
function staleHits (onA: readonly LoadRecord[], newcomersOnB: readonly LoadRecord[], scheduling: Scheduling): Array<{ newcomer: LoadRecord, hits: LoadRecord[] }> {
  const stored = onA.filter((r) => r.status === 200 && r.headers['x-cache'] !== 'hit')
  const hits = onA.filter((r) => r.status === 200 && r.headers['x-cache'] === 'hit')
  return newcomersOnB.filter((v) => v.status === 200).map((newcomer) => {
    const next = Math.min(...stored.filter((r) => r.start >= newcomer.start).map((r) => r.start))
    return { newcomer, hits: hits.filter((r) => r.start > newcomer.end + STALE_BOUND_MS + scheduling.stalledMs(newcomer.end, r.start) && r.start < next) }
  }).filter(({ hits }) => hits.length > 0)
}

t.test('one instance cut off from Redis by a silent network while another stores visits: bounded latency, no hits from a copy it cannot know is current', async (t) => {
  const proxy = await SilentProxy.start(t, redisTarget())
  const redis = { commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 500 }
  // Two instances of one deployment: same namespace, same collection; A reaches Redis through the proxy.
  const configA = testConfig({ redis: { host: '127.0.0.1', port: proxy.port, ...redis } })
  const configB = { ...configA, redis: { ...redisTarget(), ...redis } }
  const db = await testFirestore(t)
  const repository = () => new FirestoreVisitsRepository(db, { collection: configA.visits.collection, timeoutMs: 5000 })
  await repository().ping()
  const logA = capturingLogger()
  const urlA = await listen(await buildTestApp(t, configA, { repository: repository(), loggerInstance: logA.logger }))
  const urlB = await listen(await buildTestApp(t, configB, { repository: repository() }))

  const duration = BASELINE_MS + SILENT_MS + AFTER_MS
  const common = { durationMs: duration, timeoutMs: 10_000, inspect: inspectVisitsBody }
  // The regular visitor reloads on A, 200 times a second; newcomers arrive on B, five a second.
  // Both stay under 1,000 visits a second per instance, where the service stamps visits with the wall clock.
  const scheduling = watchScheduling(t)
  const onRegular = runLoad({ ...common, url: urlA, clients: 200, ratePerSecond: 200, plan: () => ({ visitor: REGULAR }) })
  const newcomers = runLoad({ ...common, url: urlB, clients: 50, ratePerSecond: 5, plan: regularWithNewcomers(1, 'silent') })
  await sleep(BASELINE_MS)
  const silenced = Date.now()
  proxy.silent = true
  await sleep(SILENT_MS)
  const restored = Date.now()
  proxy.silent = false
  const [onA, onB] = await Promise.all([onRegular.done, newcomers.done])
  const all = [...onA, ...onB]

  t.comment(`A: ${onA.length} requests ${JSON.stringify(outcomes(onA))}; B: ${onB.length} newcomers ${JSON.stringify(outcomes(onB))}`)
  t.same(all.filter((r) => r.status !== 200).map((r) => `${r.seq} ${r.visitor}: ${r.status ?? r.error}`), [],
    'every request on both instances answered 200')
  t.same(all.filter((r) => !r.complete || r.problem !== undefined).map((r) => `${r.seq}: ${r.problem ?? 'incomplete body'}`), [],
    'every body complete, and the page (or JSON) of that visitor')

  const baseline = finishedBefore(onA, silenced)
  const firestoreP99 = percentile(finishedBefore(onB, silenced).map((r) => r.ms), 99)
  const bound = COMMAND_TIMEOUT_MS + firestoreP99
  const during = startedBetween(onA, silenced, restored)
  t.comment(`A before: hit ratio ${hitRatio(baseline).toFixed(3)}, ${latencySummary(baseline)}; B's newcomers (Firestore rounds) p99 ${firestoreP99.toFixed(0)} ms`)
  t.comment(`A while silent: ${latencySummary(during)}; ${JSON.stringify(outcomes(during))}`)
  const slow = onA.filter((r) => scheduling.netMs(r) > bound + SCHEDULING_MARGIN_MS).map((r) => `${r.headers['x-cache']}: sent ${r.start - silenced} ms into the silence, took ${Math.round(r.ms)} ms`)
  t.same(slow, [], `every request on A within one command timeout plus Firestore (${bound.toFixed(0)} ms + ${scheduling.describe()})`)

  const stale = staleHits(onA, onB, scheduling)
  const longest = Math.max(0, ...stale.map(({ newcomer, hits }) => hits.at(-1)!.start - newcomer.end))
  t.comment(`stale hits on A: ${stale.reduce((n, s) => n + s.hits.length, 0)} after ${stale.length} newcomers; served up to ${longest} ms after B stored a newer visit`)
  t.same(stale.map(({ newcomer, hits }) => `${newcomer.visitor} stored by B at +${newcomer.end - silenced} ms: ${hits.length} hits on A until +${hits.at(-1)!.start - silenced} ms`), [],
    `A stops answering the regular visitor as the newest within ${STALE_BOUND_MS} ms (after the event loop's stalls) of B storing a newer visit, silent network or not`)
  const afterwards = startedBetween(onA, restored)
  t.ok(afterwards.some((r) => r.status === 200 && r.headers['x-cache'] !== 'hit' && r.headers['x-cache'] !== 'bypass'),
    'once the network is back, A stores the regular visitor again through the cache: it caught up with B')
  t.ok(startedBetween(onA, restored + AFTER_MS / 2).some((r) => r.headers['x-cache'] === 'hit'), 'and serves hits again')

  const counts = checkLedger(t, all, await storedVisits(db, configA.visits.collection))
  t.comment(`Firestore: ${JSON.stringify(counts)}`)
  t.same(logA.lines().filter((l) => Number(l.level) >= 50).map((l) => l.message), [], 'nothing logged as an error on A')
})
