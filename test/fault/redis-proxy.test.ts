import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { hostPort } from '../helpers/ports.js'
import { redisTarget } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { beforeFault, checkAfterRecovery, checkAllAnswered, NOTICE_MS, serveWithRedisAt, steadyTraffic, stopOnceRecovered, SCHEDULING_MARGIN_MS, watchScheduling } from './checks.js'
import { hitRatio, hitsBackAt, latencySummary, outcomes, percentile, startedBetween } from './load.js'

const COMMAND_TIMEOUT_MS = 300
const BASELINE_MS = 1500
const BLACKHOLE_MS = 1500
const RESET_MS = 1000
/** Hits must be back above 90% this soon after the network forwards again, without anything restarted. */
const RECOVERY_MS = 5000

t.test('the network to Redis blackholed, then resetting, then back, under sustained load: all 200, bounded, hits back by themselves', async (t) => {
  const proxy = await TcpProxy.start(t, redisTarget())
  const { url, db, collection, lines } = await serveWithRedisAt(t, hostPort(proxy.address), COMMAND_TIMEOUT_MS)

  // Warm up (JIT, templates, connections) so the baseline is the service's steady state.
  const warmUp = (await steadyTraffic(url, 'warm-up', 500).done).all
  const scheduling = watchScheduling(t)
  const traffic = steadyTraffic(url, 'proxied', BASELINE_MS + BLACKHOLE_MS + RESET_MS + RECOVERY_MS + 1000)
  await sleep(BASELINE_MS)
  const blackholed = Date.now()
  proxy.switch('blackhole')
  await sleep(BLACKHOLE_MS)
  const resetting = Date.now()
  proxy.switch('reset')
  await sleep(RESET_MS)
  const forwarding = Date.now()
  proxy.switch('forward')
  await stopOnceRecovered(traffic, forwarding, { capMs: RECOVERY_MS + 1000 })
  const { all: records, arrivals } = await traffic.done
  const all = [...warmUp, ...records]

  checkAllAnswered(t, warmUp, records, arrivals)

  const { baseline, firestoreP99, bound } = beforeFault(records, blackholed, COMMAND_TIMEOUT_MS)
  t.comment(`baseline: hit ratio ${hitRatio(baseline).toFixed(3)}, ${latencySummary(baseline)}, Firestore rounds p99 ${firestoreP99.toFixed(0)} ms`)
  t.ok(hitRatio(baseline) > 0.9, 'the load is mostly cache hits before the fault')
  for (const [phase, from, to] of [['blackhole', blackholed, resetting], ['reset', resetting, forwarding]] as const) {
    const during = startedBetween(records, from, to)
    const slow = during.filter((r) => scheduling.netMs(r) > bound + SCHEDULING_MARGIN_MS)
      .map((r) => `${r.arrival ? 'arrival' : `client ${r.client}`} ${r.visitor} ${r.headers['x-cache']}: sent ${r.start - from} ms in, took ${Math.round(r.ms)} ms`)
    t.comment(`${phase}: ${latencySummary(during)}; ${JSON.stringify(outcomes(during))}; arrivals ${latencySummary(startedBetween(arrivals, from, to))}; bound ${bound.toFixed(0)} ms`)
    t.ok(during.length > 100, `sustained load during the ${phase} (${during.length} requests)`)
    t.ok(during.filter((r) => r.headers['x-cache'] === 'bypass').length > 100, `the ${phase} was real: pages served without the cache`)
    t.same(startedBetween(during, from + NOTICE_MS).filter((r) => r.headers['x-cache'] === 'hit' && r.start > from + NOTICE_MS + scheduling.stalledMs(from, r.start))
      .map((r) => `${r.seq} at +${r.start - from} ms`), [],
    `no hit from ${NOTICE_MS} ms (after the event loop's stalls) into the ${phase} on: no copy of the list is trusted without Redis`)
    t.ok(percentile(during.map(scheduling.netMs), 99) <= bound + SCHEDULING_MARGIN_MS,
      `${phase}: p99 within the command timeout plus Firestore's p99 (+ ${scheduling.describe()})`)
    t.same(slow, [], `${phase}: every request within the bound (${bound.toFixed(0)} ms + ${scheduling.describe()})`)
  }

  const back = hitsBackAt(records, forwarding)
  const firstHit = records.find((r) => r.start >= forwarding && r.headers['x-cache'] === 'hit')
  t.comment(`forwarding again: first hit ${firstHit === undefined ? 'never' : `${firstHit.start - forwarding} ms`}, ` +
    `hit ratio above 90% (500 ms window) ${back === undefined ? 'never' : `${back - forwarding} ms`} after`)
  t.ok(back !== undefined && back - forwarding <= RECOVERY_MS, `hits back above 90% within ${RECOVERY_MS} ms, nothing restarted`)
  await checkAfterRecovery(t, { records, all, back, db, collection, log: lines() })
})
