import { setTimeout as sleep } from 'node:timers/promises'
import type { Firestore } from '@google-cloud/firestore'
import t from 'tap'
import type { Test } from 'tap'
import { TestRedisServer } from '../helpers/redis-server.js'
import {
  checkAllAnswered, checkLedger, heapAfterGc, isNewcomer, mb, NOTICE_MS, serveWithRedisAt, steadyTraffic, stopOnceRecovered, storedVisits, SCHEDULING_MARGIN_MS, watchScheduling, type Scheduling
} from './checks.js'
import { finishedBefore, hitRatio, hitsBackAt, latencySummary, percentile, startedBetween, type LoadRecord } from './load.js'

const COMMAND_TIMEOUT_MS = 300
const BASELINE_MS = 1500
const OUTAGE_MS = 2000
/** The hit ratio must be back above 90% this soon after Redis answers again. */
const RECOVERY_MS = 5000
/**
 * Heap (after a full GC) the app may keep after tens of thousands of requests, an outage
 * and a recovery, once the test has let go of its records: a leak of even 1 KB per
 * request would exceed it.
 */
const HEAP_GROWTH_BOUND = 16 * 1024 * 1024

interface Run {
  warmUp: LoadRecord[]
  records: LoadRecord[]
  arrivals: LoadRecord[]
  killed: number
  restarted: number
  db: Firestore
  collection: string
  log: Array<Record<string, unknown>>
  scheduling: Scheduling
}

t.test('Redis killed under sustained load, then restarted: no 5xx, every answered visit stored, bounded latency, hits back, bounded memory', async (t) => {
  const redisServer = await TestRedisServer.start(t)
  const { url, db, collection, lines } = await serveWithRedisAt(t, { host: '127.0.0.1', port: redisServer.port }, COMMAND_TIMEOUT_MS)

  // Warm up (JIT, templates, connections) before the heap baseline.
  const warmUp = (await steadyTraffic(url, 'warm-up', 500).done).all
  const heapBefore = await heapAfterGc()

  const scheduling = watchScheduling(t)
  const traffic = steadyTraffic(url, 'killed', BASELINE_MS + OUTAGE_MS + RECOVERY_MS + 1000)
  await sleep(BASELINE_MS)
  await redisServer.stop()
  const killed = Date.now()
  await sleep(OUTAGE_MS)
  await redisServer.restart()
  const restarted = Date.now()
  await stopOnceRecovered(traffic, restarted, { capMs: RECOVERY_MS + 1000 })
  const { all: records, arrivals } = await traffic.done

  const requests = await checkRun(t, { warmUp, records, arrivals, killed, restarted, db, collection, log: lines(), scheduling })
  // The records are the test's, not the app's: let go of them before measuring the app's heap.
  records.length = 0
  traffic.release()
  warmUp.length = 0
  const heapAfter = await heapAfterGc()
  t.comment(`heap after GC: ${mb(heapBefore)} before, ${mb(heapAfter)} after ${requests} requests (${mb(heapAfter - heapBefore)})`)
  t.ok(heapAfter - heapBefore < HEAP_GROWTH_BOUND, `the app's heap grew by less than ${mb(HEAP_GROWTH_BOUND)}`)
})

/** Everything but the heap; returns the number of requests. */
async function checkRun (t: Test, { warmUp, records, arrivals, killed, restarted, db, collection, log, scheduling }: Run): Promise<number> {
  const all = [...warmUp, ...records]
  checkAllAnswered(t, warmUp, records, arrivals)

  const baseline = finishedBefore(records, killed)
  const baselineStored = baseline.filter((r) => r.headers['x-cache'] !== 'hit')
  const outage = startedBetween(records, killed, restarted)
  const firestoreP99 = percentile(baselineStored.map((r) => r.ms), 99)
  const bound = COMMAND_TIMEOUT_MS + firestoreP99
  t.comment(`baseline: hit ratio ${hitRatio(baseline).toFixed(3)}; hits ${latencySummary(baseline.filter((r) => r.headers['x-cache'] === 'hit'))}; ` +
    `Firestore rounds (misses) ${latencySummary(baselineStored)}`)
  t.comment(`outage: ${latencySummary(outage)}; arrivals ${latencySummary(startedBetween(arrivals, killed, restarted))}; bound ${bound.toFixed(0)} ms = command timeout ${COMMAND_TIMEOUT_MS} + baseline Firestore p99 ${firestoreP99.toFixed(0)}`)
  t.ok(hitRatio(baseline) > 0.9, 'the load is mostly cache hits before the outage')
  t.ok(outage.length > 100, `sustained load during the outage (${outage.length} requests)`)
  t.ok(outage.filter((r) => r.headers['x-cache'] === 'bypass').length > 100, 'the fault was real: pages served without the cache')
  t.same(startedBetween(outage, killed + NOTICE_MS).filter((r) => r.headers['x-cache'] === 'hit' && r.start > killed + NOTICE_MS + scheduling.stalledMs(killed, r.start))
    .map((r) => `${r.seq} at +${r.start - killed} ms`), [],
  `no hit from ${NOTICE_MS} ms (after the event loop's stalls) into the outage on: no copy of the list is trusted without Redis`)
  t.ok(percentile(outage.map(scheduling.netMs), 99) <= bound + SCHEDULING_MARGIN_MS,
    `p99 during the outage within the command timeout plus Firestore's own p99 (+ ${scheduling.describe()})`)

  const back = hitsBackAt(records, restarted)
  const firstHit = records.find((r) => r.start >= restarted && r.headers['x-cache'] === 'hit')
  t.comment(`after the restart: first hit ${firstHit === undefined ? 'never' : `${firstHit.start - restarted} ms`}, ` +
    `hit ratio above 90% (500 ms window) ${back === undefined ? 'never' : `${back - restarted} ms`}`)
  t.ok(back !== undefined && back - restarted <= RECOVERY_MS, `hits back above 90% within ${RECOVERY_MS} ms of the restart`)
  if (back !== undefined) {
    const rest = startedBetween(records, back)
    t.ok(hitRatio(rest) > 0.9, `and they stay there (${hitRatio(rest).toFixed(3)} over ${rest.length} requests)`)
  }

  const counts = checkLedger(t, all, await storedVisits(db, collection))
  t.comment(`Firestore: ${JSON.stringify(counts)}; newcomers answered during the outage: ${outage.filter((r) => isNewcomer(r) && r.status === 200).length}`)

  t.same(log.filter((l) => Number(l.level) >= 50).map((l) => l.message), [], 'nothing logged as an error')
  t.equal(log.filter((l) => l.message === 'redis unreachable; requests are served without the cache until it is back').length, 1,
    'one log line for the outage under load, not one per request')
  t.equal(log.filter((l) => l.message === 'redis reconnected').length, 1, 'one for the recovery')
  return all.length
}
