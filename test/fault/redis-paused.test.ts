import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { TestRedisServer } from '../helpers/redis-server.js'
import { beforeFault, checkAfterRecovery, checkAllAnswered, serveWithRedisAt, steadyTraffic, stopOnceRecovered, SCHEDULING_MARGIN_MS, watchScheduling } from './checks.js'
import { hitRatio, hitsBackAt, latencySummary, outcomes, percentile, startedBetween } from './load.js'

const COMMAND_TIMEOUT_MS = 300
const BASELINE_MS = 1500
const PAUSE_MS = 1500
/** Hits must be back above 90% this soon after the pause ends, without anything restarted. */
const RECOVERY_MS = 5000

t.test('Redis paused (CLIENT PAUSE) under sustained load: every request fails open within the bound, and hits come back by themselves', async (t) => {
  // Its own server: a pause holds every client of the server, and the shared one serves other tests.
  const redisServer = await TestRedisServer.start(t)
  const { url, db, collection, lines } = await serveWithRedisAt(t, { host: '127.0.0.1', port: redisServer.port }, COMMAND_TIMEOUT_MS)

  // Warm up (JIT, templates, connections) so the baseline is the service's steady state.
  const warmUp = (await steadyTraffic(url, 'warm-up', 500).done).all
  const scheduling = watchScheduling(t)
  const traffic = steadyTraffic(url, 'paused', BASELINE_MS + PAUSE_MS + RECOVERY_MS + 1000)
  await sleep(BASELINE_MS)
  const paused = Date.now()
  await redisServer.pause(PAUSE_MS)
  const unpaused = paused + PAUSE_MS
  await stopOnceRecovered(traffic, unpaused, { capMs: RECOVERY_MS + 1000 })
  const { all: records, arrivals } = await traffic.done
  const all = [...warmUp, ...records]

  checkAllAnswered(t, warmUp, records, arrivals)

  // Firestore's own latency under this load: the requests that went to it before the pause.
  const { baseline, firestoreP99, bound } = beforeFault(records, paused, COMMAND_TIMEOUT_MS)
  const during = startedBetween(records, paused, unpaused)
  t.comment(`baseline: hit ratio ${hitRatio(baseline).toFixed(3)}, ${latencySummary(baseline)}, Firestore rounds p99 ${firestoreP99.toFixed(0)} ms`)
  t.comment(`paused: ${latencySummary(during)}; ${JSON.stringify(outcomes(during))}; arrivals ${latencySummary(startedBetween(arrivals, paused, unpaused))}`)
  t.comment(`bound ${bound.toFixed(0)} ms = command timeout ${COMMAND_TIMEOUT_MS} + Firestore p99`)
  t.ok(hitRatio(baseline) > 0.9, 'the load is mostly cache hits before the pause')
  t.ok(during.filter((r) => r.headers['x-cache'] === 'bypass').length > 50, 'the pause was felt: requests served without the cache')
  t.ok(percentile(during.map(scheduling.netMs), 99) <= bound + SCHEDULING_MARGIN_MS,
    `p99 during the pause within the command timeout plus Firestore's p99 (+ ${scheduling.describe()})`)
  const slow = records.filter((r) => scheduling.netMs(r) > bound + SCHEDULING_MARGIN_MS)
    .map((r) => `${r.arrival ? 'arrival' : `client ${r.client}`} ${r.visitor} ${r.headers['x-cache']}: sent ${r.start - paused} ms after the pause, took ${Math.round(r.ms)} ms`)
  t.same(slow, [], `every request, before, during and after the pause, within one command timeout plus Firestore (${bound.toFixed(0)} ms + ${scheduling.describe()})`)

  const back = hitsBackAt(records, unpaused)
  t.comment(`hit ratio above 90% (500 ms window) ${back === undefined ? 'never' : `${back - unpaused} ms`} after the pause ended`)
  t.ok(back !== undefined && back - unpaused <= RECOVERY_MS, `hits back above 90% within ${RECOVERY_MS} ms of the pause's end, nothing restarted`)
  await checkAfterRecovery(t, { records, all, back, db, collection, log: lines() })
})
