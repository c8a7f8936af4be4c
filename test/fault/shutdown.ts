/**
 * SIGTERM under load, for any way the server runs: the built server as a process of its own
 * (test/fault/sigterm.test.ts) or the Docker image stopped with `docker stop`
 * (test/docker/image.test.ts). The same load, the same checks.
 */
import { connect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { DRAIN } from '../../src/config.js'
import { testFirestore } from '../helpers/services.js'
import { checkLedger, steadyTraffic, storedVisits } from './checks.js'
import { latencySummary, outcomes, startedBetween } from './load.js'

/** A server started for one test, and how to stop it. */
export interface ServerUnderTest {
  /** The visits page. */
  url: string
  /** Where its visits go (in the test's emulator). */
  collection: string
  /** Sends SIGTERM (kill, or `docker stop`) without waiting: the load goes on meanwhile. */
  signal: () => void
  /** When the process ended (epoch ms) and its exit code. */
  exited: Promise<{ code: number | null, at: number }>
  /** Its log, a parsed object per line ({ unparsed } for a line that is not JSON). */
  lines: () => Array<Record<string, unknown>>
}

export interface ShutdownOptions {
  /** Every request on a connection of its own (Connection: close), as a client without keep-alive sends them. */
  fresh?: boolean
  /** Closed-loop clients (steadyTraffic's default is 8). */
  clients?: number
  /** Every n-th request is a newcomer's: a small n makes most requests store a visit. */
  newcomerEvery?: number
  /** Load before the signal. */
  beforeSignalMs?: number
  /** Runs just before the signal (to hold the requests then in flight). */
  beforeSignal?: () => Promise<void>
  /** Opens a connection that sends nothing before the signal: a client or proxy that connected ahead of its request. */
  silentConnection?: boolean
  /** How long after the signal the process must be gone. */
  exitBoundMs: number
}

/** Connection errors of a request that never reached a handler: the port was closed, or closed under it. */
export const REFUSED = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'socket hang up'])

/**
 * Sends steady traffic, signals, and checks: a clean exit (code 0) within the bound; every request
 * sent before the signal, and in the accept window after it, answered 200 with the whole page or
 * JSON; the later ones answered the same way or refused at the connection (a connection that was
 * waiting in the kernel's accept queue as the port closed is reset, before anything of it was
 * read), never cut mid-answer; refused after the exit; every stored visit accounted for; nothing
 * logged as an error. Returns the milliseconds from the signal to the exit.
 */
export async function shutdownUnderLoad (t: Test, server: ServerUnderTest, options: ShutdownOptions): Promise<number | undefined> {
  const { fresh = false, clients, newcomerEvery = 10, beforeSignalMs = 1500, beforeSignal, silentConnection = false, exitBoundMs } = options
  const { port } = new URL(server.url)
  const traffic = steadyTraffic(server.url, 'sigterm', 15_000, { newcomerEvery, fresh, ...(clients === undefined ? {} : { clients }) })
  await sleep(beforeSignalMs)
  let silent: Socket | undefined
  if (silentConnection) {
    silent = connect(Number(port), '127.0.0.1')
    silent.on('error', () => {})
    await new Promise((resolve) => silent!.once('connect', resolve))
    // Accepted by the server by then, not waiting in the kernel's queue.
    await sleep(200)
  }
  await beforeSignal?.()
  const signalled = Date.now()
  const inFlight = traffic.inFlight()
  server.signal()
  const giveUp = new AbortController()
  const exit = await Promise.race([server.exited, sleep(12_000, undefined, { signal: giveUp.signal }).then(() => undefined, () => undefined)])
  giveUp.abort()
  // Load keeps coming for a moment after the exit: it must be refused.
  await sleep(500)
  traffic.stop()
  const { all: records, arrivals } = await traffic.done
  silent?.destroy()

  t.comment(`${fresh ? 'a new connection per request' : 'kept-alive connections'}; requests: ${records.length} (${arrivals.length} open-loop arrivals); ` +
    `${JSON.stringify(outcomes(records))}; in flight at SIGTERM: ${inFlight}`)
  t.ok(exit !== undefined, 'the process exited')
  if (exit === undefined) return undefined
  const took = exit.at - signalled
  t.comment(`exited ${took} ms after SIGTERM with code ${exit.code}`)
  t.equal(exit.code, 0, 'a clean exit: no error, no timeout')
  t.ok(took < exitBoundMs, `exited within ${exitBoundMs} ms of SIGTERM (${took} ms)`)

  const answered = records.filter((r) => r.status !== undefined)
  const failed = records.filter((r) => r.status === undefined)
  const answeredAfter = answered.filter((r) => r.end >= signalled)
  const sentBefore = answeredAfter.filter((r) => r.start < signalled)
  t.comment(`answered after SIGTERM: ${answeredAfter.length} (${sentBefore.length} sent before it, ${latencySummary(sentBefore)})`)
  t.ok(inFlight > 0 && answeredAfter.length > 0, `requests were in flight when the signal came (${inFlight}), and answered after it`)
  t.same(answered.filter((r) => r.status !== 200).map((r) => `${r.seq} ${r.visitor}: ${r.status}`), [], 'every request answered got a 200: no 5xx, no 429')
  t.same(answered.filter((r) => !r.complete || r.problem !== undefined).map((r) => `${r.seq}: ${r.problem ?? 'incomplete body'}`), [],
    'every answer complete: the whole page or JSON of that visitor, never a truncated body')
  t.same(failed.filter((r) => r.start < signalled).map((r) => `${r.seq}: ${r.error} ${r.end - signalled} ms after the signal`), [],
    'no request sent before the signal failed')
  // The port accepts for DRAIN.acceptMs after the signal; a margin for the load's own event loop.
  const windowMs = DRAIN.acceptMs - 200
  t.same(failed.filter((r) => r.start >= signalled && r.start < signalled + windowMs).map((r) => `${r.seq}: ${r.error} sent ${r.start - signalled} ms after the signal`), [],
    `no request sent in the first ${windowMs} ms after the signal failed: the port still accepted them`)
  t.same([...new Set(failed.map((r) => r.error))].filter((e) => !REFUSED.has(e ?? '')), [], 'the others were refused at the connection, never cut mid-answer')
  const afterExit = startedBetween(records, exit.at)
  t.ok(afterExit.length > 0 && afterExit.every((r) => r.error === 'ECONNREFUSED'), `after the exit every request is refused (${afterExit.length})`)

  const counts = checkLedger(t, records, await storedVisits(await testFirestore(t), server.collection))
  t.comment(`Firestore: ${JSON.stringify(counts)}`)

  const log = server.lines()
  t.same(log.filter((l) => l.unparsed !== undefined || /unhandled/i.test(JSON.stringify(l))), [], 'no unhandled rejection or exception, every line JSON')
  t.same(log.filter((l) => ['ERROR', 'CRITICAL', 'ALERT', 'EMERGENCY'].includes(String(l.severity))), [], 'nothing logged as an error or fatal')
  t.ok(log.some((l) => l.message === 'closing: finishing the requests in flight'), 'the shutdown was the graceful one')
  return took
}
