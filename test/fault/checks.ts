/**
 * What the fault-under-load tests share: the traffic they send, the Firestore
 * ledger check, and heap measurement.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Firestore } from '@google-cloud/firestore'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { FirestoreVisitsRepository } from '../../src/visits/firestore-repository.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { testFirestore } from '../helpers/services.js'
import { finishedBefore, hitRatio, hitsBackAt, outcomes, percentile, runLoad, startedBetween, type LoadRecord, type Planned } from './load.js'

/**
 * What a request may take beyond its latency bound on an idle machine: timers fire late and
 * the event loop is shared with the load generator. Well under a command timeout, so one
 * timeout waited twice still shows.
 */
export const SCHEDULING_MARGIN_MS = 100

/** Ticks of the stall watch; a tick later than this is a stall. */
const TICK_MS = 10
const LATE_MS = 2

export interface Scheduling {
  /** Milliseconds the event loop was held up between two epoch times. */
  stalledMs: (from: number, to: number) => number
  /** What a request took beyond the event loop's stalls while it ran. */
  netMs: (record: LoadRecord) => number
  /** For assertion messages: the allowance and the stalls seen. */
  describe: () => string
}

/**
 * Watches, from the start of the measured traffic, when the event loop was held up: the app, the
 * load generator and the clients share it, and on a busy machine other processes take the CPU
 * from all three. A request is held to its bound plus SCHEDULING_MARGIN_MS after the stalls
 * during it are taken off its time, so a loaded machine excuses exactly the delay it measurably
 * caused, that request's only. Waiting on a timeout holds the event loop up for nothing, so a
 * timeout waited twice still shows.
 */
export function watchScheduling (t: Test): Scheduling {
  const stalls: Array<{ from: number, to: number }> = []
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    const late = now - last - TICK_MS
    last = now
    if (late > LATE_MS) stalls.push({ from: Date.now() - late, to: Date.now() })
  }, TICK_MS)
  t.teardown(() => { clearInterval(timer) })
  const stalledMs = (from: number, to: number) =>
    stalls.reduce((sum, stall) => sum + Math.max(0, Math.min(to, stall.to) - Math.max(from, stall.from)), 0)
  return {
    stalledMs,
    netMs: (record) => record.ms - stalledMs(record.start, record.end),
    describe: () => {
      const longest = Math.max(0, ...stalls.map((s) => s.to - s.from))
      return `${SCHEDULING_MARGIN_MS} ms for scheduling, after the event loop's stalls during each request (longest ${Math.round(longest)} ms)`
    }
  }
}

/**
 * How long a process may still serve hits from its own copy of the list once Redis is gone:
 * the copy is trusted only while the store's change announcements are heard, and a closed
 * or reset connection is noticed at once.
 */
export const NOTICE_MS = 250

/** The visitor who sends most of the traffic: reloading while newest, so mostly cache hits. */
export const REGULAR = 'regular reader'

/**
 * The traffic of the fault tests. A hit needs the visitor to be the newest entry of the
 * cached list (src/visits/recent-visits.ts), so concurrent clients that each sent their own
 * user agent would follow one another and every request would store a visit. Instead
 * every request is the regular visitor's reload, except every `every`-th, which is a
 * newcomer with a user agent of its own who visits once (and makes the regular visitor's
 * next request a stored visit again; its reloads meanwhile share that round and are not hits
 * either). `run` keeps newcomers of several runs apart. Both alternate between the HTML
 * page and JSON.
 */
export function regularWithNewcomers (every: number, run: string): (client: number, seq: number) => Planned {
  return (_client, seq) => {
    const json: Record<string, string> = { accept: 'application/json' }
    if (seq % every !== every - 1) return { visitor: REGULAR, headers: seq % 2 === 0 ? {} : json }
    const newcomer = Math.floor(seq / every)
    return { visitor: `newcomer ${run} ${seq}`, headers: newcomer % 2 === 0 ? {} : json }
  }
}

export interface Traffic {
  /** Every record of both loads once both have stopped; `arrivals` are the open-loop ones. */
  done: Promise<{ all: LoadRecord[], arrivals: LoadRecord[] }>
  stop: () => void
  records: () => LoadRecord[]
  inFlight: () => number
  /** Empties every record array, so the records can be collected. */
  release: () => void
}

/**
 * The load of the fault tests: `clients` virtual clients back to back (closed loop), plus
 * requests arriving on their own schedule, `ratePerSecond` of them (open loop), which keep
 * coming while the service stalls, as users would, instead of waiting for it. `fresh`: every
 * request on a connection of its own (see LoadOptions.fresh).
 */
export function steadyTraffic (url: string, name: string, durationMs: number, { clients = 8, ratePerSecond = 50, newcomerEvery = 200, fresh = false } = {}): Traffic {
  const common = { url, durationMs, timeoutMs: 10_000, inspect: inspectVisitsBody, fresh }
  const closed = runLoad({ ...common, clients, plan: regularWithNewcomers(newcomerEvery, name) })
  const open = runLoad({ ...common, clients: 200, ratePerSecond, plan: regularWithNewcomers(newcomerEvery, `${name} arrivals`) })
  return {
    done: Promise.all([closed.done, open.done]).then(([a, b]) => ({ all: [...a, ...b], arrivals: b })),
    stop: () => { closed.stop(); open.stop() },
    records: () => [...closed.records, ...open.records],
    inFlight: () => closed.inFlight() + open.inFlight(),
    release: () => {
      closed.records.length = 0
      open.records.length = 0
    }
  }
}

/**
 * Keeps the traffic going until its hit ratio has been back above 90% (see hitsBackAt) for
 * `settleMs`, or for at most `capMs` after `from`, then stops it. Returns when it stopped.
 */
export async function stopOnceRecovered (traffic: Traffic, from: number, { settleMs = 1500, capMs }: { settleMs?: number, capMs: number }): Promise<void> {
  while (Date.now() < from + capMs) {
    await sleep(100)
    const back = hitsBackAt(traffic.records(), from)
    if (back !== undefined && Date.now() >= back + settleMs) break
  }
  traffic.stop()
}

export function isNewcomer (record: LoadRecord): boolean {
  return record.visitor !== REGULAR
}

/** The visits a 200 lists (user agent and time), newest first; a string when the body is not a whole page or JSON. */
function listedVisits (record: LoadRecord, body: string): Array<{ visitor: string, at: number }> | string {
  const type = record.headers['content-type'] ?? ''
  const agent = (visitor: string) => visitor.slice(visitor.indexOf(': ') + 2)
  if (record.accept === 'application/json') {
    if (!type.startsWith('application/json')) return `200 with content-type ${type}`
    try {
      const visits = (JSON.parse(body) as { visits?: Array<{ visitor?: string, timestamp?: string }> }).visits
      if (!Array.isArray(visits)) return '200 JSON without visits'
      return visits.map((v) => ({ visitor: agent(String(v.visitor)), at: Date.parse(String(v.timestamp)) }))
    } catch {
      return '200 with a body that is not JSON'
    }
  }
  if (!type.startsWith('text/html')) return `200 with content-type ${type}`
  if (!/<h1>Last 10 visits<\/h1>/.test(body) || !/<\/html>\s*$/.test(body)) return '200 without the whole page'
  return [...body.matchAll(/<time datetime="([^"]+)">[^<]*<\/time> from <span class="visitor">([^<]*)<\/span>/g)]
    .map((m) => ({ visitor: agent(m[2]!), at: Date.parse(m[1]!) }))
}

/**
 * What a page or its JSON must look like, by status; returns what is wrong. A 200 lists
 * the visitor's visit: first for a hit (that is what makes it one), and among the visits
 * otherwise (a concurrent visit with a later timestamp may come before it), unless ten
 * visits newer than the request's start pushed it off the list.
 */
export function inspectVisitsBody (record: LoadRecord, body: string): string | undefined {
  const json = record.accept === 'application/json'
  const type = record.headers['content-type'] ?? ''
  if (record.status === 200) {
    const listed = listedVisits(record, body)
    if (typeof listed === 'string') return listed
    if (record.headers['x-cache'] === 'hit' && listed[0]?.visitor !== record.visitor) return `a hit whose newest visit is ${listed[0]?.visitor}'s`
    if (listed.some((v) => v.visitor === record.visitor)) return undefined
    const pushedOff = listed.length === 10 && listed.every((v) => v.at >= record.start - CLOCK_TOLERANCE_MS)
    return pushedOff ? undefined : `200 without the visitor's visit: ${listed.map((v) => v.visitor).join(', ')}`
  }
  if (record.status === 503) {
    if (record.headers['retry-after'] !== '5') return `503 with retry-after ${record.headers['retry-after']}`
    if (json) {
      const expected = JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'The database is not answering right now.' })
      return body === expected ? undefined : `503 JSON body ${body.slice(0, 200)}`
    }
    if (!type.startsWith('text/html')) return `503 with content-type ${type}`
    return /<h1>Temporarily unavailable<\/h1>/.test(body) && /The database is not answering right now\./.test(body)
      ? undefined
      : `503 page ${body.slice(0, 200)}`
  }
  return undefined
}

/**
 * The app on real sockets for a Redis fault: Redis at `redis` with the given command timeout,
 * visits in the emulator (a collection of its own), every log line kept.
 */
export async function serveWithRedisAt (t: Test, redis: { host: string, port: number }, commandTimeoutMs: number): Promise<{
  url: string, db: Firestore, collection: string, lines: () => Array<Record<string, unknown>>
}> {
  const config = testConfig({ redis: { ...redis, commandTimeoutMs, connectTimeoutMs: 500 } })
  const db = await testFirestore(t)
  const repository = new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 5000 })
  // Timed requests measure the fault, not a new Firestore client's channel set-up.
  await repository.ping()
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, config, { repository, loggerInstance: logger })
  return { url: await listen(app), db, collection: config.visits.collection, lines }
}

/** Every request of a Redis fault run got a complete 200 page or JSON of its visitor. */
export function checkAllAnswered (t: Test, warmUp: LoadRecord[], records: LoadRecord[], arrivals: LoadRecord[]): void {
  const all = [...warmUp, ...records]
  t.comment(`requests: ${records.length} (${arrivals.length} open-loop arrivals) +${warmUp.length} warm-up; ${JSON.stringify(outcomes(records))}`)
  t.same(all.filter((r) => r.status !== 200).map((r) => `${r.seq} ${r.visitor}: ${r.status ?? r.error}`), [],
    'every request answered 200: no 5xx, no connection error')
  t.same(all.filter((r) => !r.complete || r.problem !== undefined).map((r) => `${r.seq}: ${r.problem ?? 'incomplete body'}`), [],
    'every body complete, and the page (or JSON) of that visitor')
}

/**
 * The requests before the fault, Firestore's p99 under this load (the requests that went to it),
 * and the bound a request may take during a Redis fault: one command timeout plus that.
 */
export function beforeFault (records: LoadRecord[], faultAt: number, commandTimeoutMs: number): { baseline: LoadRecord[], firestoreP99: number, bound: number } {
  const baseline = finishedBefore(records, faultAt)
  const firestoreP99 = percentile(baseline.filter((r) => r.headers['x-cache'] !== 'hit').map((r) => r.ms), 99)
  return { baseline, firestoreP99, bound: commandTimeoutMs + firestoreP99 }
}

/**
 * After a Redis fault: hits that came back (at `back`) stay above 90%, every visit is in
 * Firestore as the ledger says, and nothing was logged as an error.
 */
export async function checkAfterRecovery (t: Test, { records, all, back, db, collection, log }: {
  records: LoadRecord[], all: LoadRecord[], back: number | undefined, db: Firestore, collection: string, log: Array<Record<string, unknown>>
}): Promise<void> {
  if (back !== undefined) {
    const rest = startedBetween(records, back)
    t.ok(hitRatio(rest) > 0.9, `and they stay there (${hitRatio(rest).toFixed(3)} over ${rest.length} requests)`)
  }
  const counts = checkLedger(t, all, await storedVisits(db, collection))
  t.comment(`Firestore: ${JSON.stringify(counts)}`)
  t.same(log.filter((l) => Number(l.level) >= 50).map((l) => l.message), [], 'nothing logged as an error')
}

/** Listens on a free port of 127.0.0.1 (closed with the app) and returns the page's URL. */
export async function listen (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return `http://127.0.0.1:${port}/`
}

export interface StoredVisit {
  id: string
  /** The user agent: the visitor without the "<ip>: " the service puts before it. */
  visitor: string
  at: number
}

export async function storedVisits (db: Firestore, collection: string): Promise<StoredVisit[]> {
  const snapshot = await db.collection(collection).get()
  return snapshot.docs.map((doc) => {
    const visitor = String(doc.get('visitor'))
    return { id: doc.id, visitor: visitor.slice(visitor.indexOf(': ') + 2), at: (doc.get('timestamp') as { toMillis: () => number }).toMillis() }
  })
}

function within (request: LoadRecord, visit: StoredVisit): boolean {
  return request.start - CLOCK_TOLERANCE_MS <= visit.at && visit.at <= request.end + CLOCK_TOLERANCE_MS
}

function groupBy<T> (items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const group = groups.get(key(item))
    if (group === undefined) groups.set(key(item), [item])
    else group.push(item)
  }
  return groups
}

/**
 * How far a stored visit's timestamp may lie outside its request's send and answer: the
 * service may move a visit to the next free millisecond so that no two visits of the
 * process share one, which under this load is a few milliseconds at most.
 */
export const CLOCK_TOLERANCE_MS = 10

export interface LedgerOptions {
  /** Statuses of requests that may have stored a visit: 200, and 503 when a write given up on may still land. */
  storing?: readonly number[]
}

/**
 * Compares what clients were told with what Firestore holds:
 * - every stored visit is one a request of that visitor made: its timestamp lies between
 *   that request's send and answer (give or take CLOCK_TOLERANCE_MS), and the request was
 *   answered with a storing status and was not a cache hit (no phantom or duplicate visit);
 * - every newcomer that got a 200 has exactly one stored visit, made by that request;
 *   no newcomer is ever a cache hit (it was never the newest);
 * - the regular visitor, once answered, has a stored visit, and at most one more than
 *   everybody else together: each of its visits follows another visitor's (or none), so
 *   a refresh stored nothing.
 * Returns the counts for comments.
 */
export function checkLedger (t: Test, records: readonly LoadRecord[], stored: readonly StoredVisit[], { storing = [200] }: LedgerOptions = {}): Record<string, number> {
  const requestsOf = groupBy(records, (r) => r.visitor)
  const storedOf = groupBy(stored, (v) => v.visitor)

  const unexplained = stored.filter((v) => !(requestsOf.get(v.visitor) ?? []).some((r) =>
    r.status !== undefined && storing.includes(r.status) && r.headers['x-cache'] !== 'hit' && within(r, v)))
  t.same(unexplained.slice(0, 20).map((v) => {
    const around = (requestsOf.get(v.visitor) ?? []).filter((r) => within(r, v))
    return `${v.visitor} stored at ${v.at}; requests then: ${around.map((r) => `${r.status ?? r.error} ${r.headers['x-cache']} ${r.start}-${r.end}`).join(', ') || 'none'}`
  }), [], `every stored visit was made by a request of that visitor, answered, and not a cache hit (${unexplained.length} of ${stored.length} not)`)

  const newcomers = records.filter(isNewcomer)
  const answered = newcomers.filter((r) => r.status === 200)
  const wrong = answered.flatMap((r) => {
    const visits = storedOf.get(r.visitor) ?? []
    if (visits.length !== 1) return [`${r.visitor}: ${visits.length} stored visits`]
    return within(r, visits[0]!) ? [] : [`${r.visitor}: stored at ${visits[0]!.at}, asked ${r.start}-${r.end}`]
  })
  t.same(wrong, [], `each of the ${answered.length} newcomers answered 200 has exactly one stored visit, from that request`)
  t.same(newcomers.filter((r) => r.headers['x-cache'] === 'hit').map((r) => r.visitor), [], 'no newcomer is served as a cache hit')

  const newcomerNames = new Set(newcomers.map((r) => r.visitor))
  const regular = stored.filter((v) => !newcomerNames.has(v.visitor))
  const regularAnswered = records.some((r) => !isNewcomer(r) && r.status === 200)
  if (regularAnswered) t.ok(regular.length >= 1, 'the regular visitor, answered, has a stored visit')
  const others = stored.length - regular.length
  t.ok(regular.length <= others + 1, `the regular visitor's ${regular.length} stored visits each follow another visitor's (${others} of those): refreshes stored nothing`)
  t.equal(new Set(stored.map((v) => v.id)).size, stored.length, 'no visit id twice')
  // How far newcomers' stored timestamps lie after their one request was answered (or before it was sent).
  const drift = answered.flatMap((r) => (storedOf.get(r.visitor) ?? []).map((v) => v.at > r.end ? v.at - r.end : v.at < r.start ? v.at - r.start : 0))
  return {
    stored: stored.length,
    newcomerTimestampOutsideRequestMaxMs: drift.reduce((max, d) => Math.abs(d) > Math.abs(max) ? d : max, 0),
    regular: regular.length,
    newcomers: newcomers.length,
    newcomersAnswered: answered.length,
    storedForUnanswered: stored.filter((v) => newcomerNames.has(v.visitor) && requestsOf.get(v.visitor)?.every((r) => r.status !== 200) === true).length
  }
}

/**
 * A full garbage collection: `global.gc` when node runs with --expose-gc, otherwise the
 * same function obtained by setting V8's flag at run time (V8 then exposes `gc` to new
 * contexts). Heap numbers are only compared after it.
 */
function collector (): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed !== undefined) return exposed
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

export async function heapAfterGc (): Promise<number> {
  const gc = collector()
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(20)
  }
  return process.memoryUsage().heapUsed
}

export function mb (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}
