/**
 * The visits page is exactly what Firestore holds, across instances and faults. Two built
 * servers share one Redis of the test's own and the Firestore emulator, reached through a
 * proxy of ours (a write can land while its answer is lost; Firestore can be slowed,
 * blackholed and cut without losing data). 40 clients mix one repeat visitor with a stream of
 * newcomers; after every phase the invariants below are checked:
 * - every visit answered 200 is in Firestore exactly once (a 503 may have stored it);
 * - no two consecutive stored visits are the same visitor's (a reload of the newest stores nothing);
 * - every visit a client was shown is stored, with that very timestamp;
 * - after a quiet second, every instance lists Firestore's 10 latest, to the millisecond, in order.
 * The instances spread the visits over three shards (VISITS_SHARDS=3): the list is rebuilt from a
 * query per shard, merged; the one-shard query is held to the same invariants without faults
 * (test/visits/visits-coherence.test.ts).
 * Bounded: about a minute, traffic to 127.0.0.1 only.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { Firestore } from '@google-cloud/firestore'
import { DRAIN } from '../../src/config.js'
import { hostPort } from '../helpers/ports.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { type Running, startServer } from '../helpers/server-process.js'
import { emulatorHost, testFirestore, uniqueName } from '../helpers/services.js'
import { type ProxyMode, TcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { runLoad, type LoadRecord } from './load.js'
import { REFUSED } from './shutdown.js'

const REPEAT = 'repeat visitor'
const LIMIT = 10
const FIRESTORE_TIMEOUT_MS = 1500
/** How long after SIGTERM a request sent must still be answered: well inside the server's accept window (DRAIN.acceptMs). */
const ANSWERED_AFTER_SIGNAL_MS = DRAIN.acceptMs - 200

interface Shown { visitor: string, at: number }
interface Stored extends Shown { id: string }

/** The user agent of "<ip>: <user agent>". */
const agentOf = (visitor: string) => visitor.slice(visitor.indexOf(': ') + 2)

async function storedVisits (db: Firestore, collection: string): Promise<Stored[]> {
  const snapshot = await db.collection(collection).get()
  const visits = snapshot.docs.map((doc) => ({
    id: doc.id,
    visitor: agentOf(String(doc.get('visitor'))),
    at: (doc.get('timestamp') as { toMillis: () => number }).toMillis()
  }))
  // As the service's query orders them: newest first, ties by the greater id.
  return visits.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1))
}

interface Service {
  /** The instances serving; an instance stopped by a test leaves it. */
  servers: Running[]
  redis: TestRedisServer
  proxy: TcpProxy
  db: Firestore
  collection: string
  /** Every visit any response listed, as "<visitor> <ms>". */
  shown: Set<string>
  /** How each visit a 200 answered for its own visitor was decided: its x-cache ("bypass": by Firestore, without the cache). */
  decided: Map<string, string>
  /** Every request of every phase. */
  records: LoadRecord[]
}

async function startService (t: Test): Promise<Service> {
  const redis = await TestRedisServer.start(t)
  const proxy = await TcpProxy.start(t, hostPort(emulatorHost()))
  const collection = uniqueName('visits')
  const env = {
    REDISHOST: '127.0.0.1',
    REDISPORT: String(redis.port),
    REDIS_COMMAND_TIMEOUT_MS: '300',
    FIRESTORE_EMULATOR_HOST: proxy.address,
    FIRESTORE_TIMEOUT_MS: String(FIRESTORE_TIMEOUT_MS),
    GOOGLE_CLOUD_PROJECT: 'demo-visitme',
    VISITS_COLLECTION: collection,
    VISITS_SHARDS: '3',
    CACHE_NAMESPACE: uniqueName('app'),
    RATE_LIMIT_WRITES: '0',
    LOG_LEVEL: 'info'
  }
  const servers = [await startServer(t, env), await startServer(t, env)]
  return { servers, redis, proxy, db: await testFirestore(t), collection, shown: new Set(), decided: new Map(), records: [] }
}

function remember (service: Service, record: LoadRecord, body: string): string | undefined {
  if (record.status !== 200) return undefined
  const { visits } = JSON.parse(body) as { visits: Array<{ visitor: string, timestamp: string }> }
  for (const v of visits) service.shown.add(`${agentOf(v.visitor)} ${Date.parse(v.timestamp)}`)
  const own = visits.find((v) => agentOf(v.visitor) === record.visitor)
  if (own !== undefined && record.headers['x-cache'] !== 'hit') service.decided.set(`${record.visitor} ${Date.parse(own.timestamp)}`, record.headers['x-cache'] ?? '')
  return undefined
}

/**
 * 40 clients, 20 on each instance, for `durationMs`: two requests of three are the repeat
 * visitor's, the third a newcomer's; `fault` runs meanwhile. The records, by instance.
 */
async function phaseByInstance (service: Service, name: string, durationMs: number, fault: () => Promise<void> = async () => {}): Promise<LoadRecord[][]> {
  const runs = service.servers.map((server, i) => runLoad({
    url: `http://127.0.0.1:${server.port}/`,
    clients: 20,
    durationMs,
    timeoutMs: 10_000,
    pauseAfterErrorMs: 50,
    plan: (client, seq) => ({
      visitor: seq % 3 === 2 ? `newcomer ${name} ${i} ${seq}` : REPEAT,
      headers: { accept: 'application/json' }
    }),
    inspect: (record, body) => remember(service, record, body)
  }))
  await fault()
  const records = await Promise.all(runs.map(async (run) => await run.done))
  service.records.push(...records.flat())
  return records
}

async function phase (service: Service, name: string, durationMs: number, fault?: () => Promise<void>): Promise<LoadRecord[]> {
  return (await phaseByInstance(service, name, durationMs, fault)).flat()
}

/** The list each instance shows now, read by a probe visitor (whose first read may store its visit). */
async function listsNow (service: Service): Promise<Shown[][]> {
  await get(service.servers[0]!, 'probe', service)
  return await Promise.all(service.servers.map(async (server) => (await get(server, 'probe', service)).visits))
}

const row = (v: Shown) => `${v.visitor} ${new Date(v.at).toISOString()}`

/** The invariants, after a phase and a quiet second. */
async function checkExact (t: Test, service: Service, name: string, records: LoadRecord[], { may503 = false } = {}): Promise<void> {
  const statuses = new Set(records.map((r) => r.status ?? r.error))
  t.same([...statuses].filter((s) => s !== 200 && !(may503 && s === 503)), [], `${name}: every request answered${may503 ? ' 200 or 503' : ' 200'}`)
  // Firestore's client reconnects with a backoff of its own: the quiet second starts once both instances serve again.
  await waitFor('both instances to serve', async () => (await Promise.all(service.servers.map(async (server) =>
    (await get(server, 'probe', service)).status))).every((status) => status === 200), 20_000)
  await sleep(1000)
  // A write the Firestore client still retries may land while the lists are read: then they are read again.
  let stored = await storedVisits(service.db, service.collection)
  let lists = await listsNow(service)
  for (let again = 0; again < 3; again++) {
    const after = await storedVisits(service.db, service.collection)
    if (after.length === stored.length) break
    t.comment(`${name}: ${after.length - stored.length} visits landed while the lists were read`)
    await sleep(1000)
    stored = await storedVisits(service.db, service.collection)
    lists = await listsNow(service)
  }
  stored = await storedVisits(service.db, service.collection)
  const storedOf = new Map<string, number>()
  for (const v of stored) storedOf.set(v.visitor, (storedOf.get(v.visitor) ?? 0) + 1)
  const newcomers = service.records.filter((r) => r.visitor !== REPEAT)
  t.same(newcomers.filter((r) => r.status === 200 && storedOf.get(r.visitor) !== 1).map((r) => `${r.visitor}: ${storedOf.get(r.visitor) ?? 0}`), [],
    `${name}: each newcomer answered 200 is stored exactly once`)
  t.same(newcomers.filter((r) => (storedOf.get(r.visitor) ?? 0) > 1).map((r) => r.visitor), [], `${name}: no newcomer stored twice`)

  // While the cache cannot answer, Firestore decides alone, and two instances may see different newest visits.
  const byCache = (v: Stored) => service.decided.get(`${v.visitor} ${v.at}`) !== 'bypass'
  const repeated = stored.filter((v, i) => i > 0 && stored[i - 1]!.visitor === v.visitor)
  const describe = (v: Stored) => `${v.at} (${service.decided.get(`${v.visitor} ${v.at}`) ?? 'not answered 200'})`
  t.same(repeated.filter((v) => byCache(v) && byCache(stored[stored.indexOf(v) - 1]!)).map((v) => `${v.visitor} at ${describe(stored[stored.indexOf(v) - 1]!)} and ${describe(v)}`), [],
    `${name}: no two consecutive visits by one visitor while the cache decides (${stored.length} stored, ${repeated.length} repeated by Firestore alone)`)

  const storedRows = new Set(stored.map((v) => `${v.visitor} ${v.at}`))
  const phantom = [...service.shown].filter((s) => !storedRows.has(s))
  t.same(phantom.slice(0, 10), [], `${name}: every visit shown to a client is stored, at the time shown (${phantom.length} of ${service.shown.size} not)`)

  const truth = stored.slice(0, LIMIT).map(row)
  lists.forEach((list, i) => t.same(list.map(row), truth, `${name}: instance ${i + 1} lists Firestore's ${LIMIT} latest, in order, to the millisecond`))
}

/** Connections Redis accepted and scripts it ran, read on the admin connection of the test. */
async function redisCounters (admin: Redis): Promise<{ connections: number, evalsha: number }> {
  const stats = await admin.info('stats')
  const commands = await admin.info('commandstats')
  return {
    connections: Number(/total_connections_received:(\d+)/.exec(stats)?.[1]),
    evalsha: Number(/cmdstat_evalsha:calls=(\d+)/.exec(commands)?.[1] ?? 0)
  }
}

/** GET / as JSON; the visits listed are remembered as shown. */
async function get (server: Running, userAgent: string, service: Service): Promise<{ status: number, cache: string | null, visits: Shown[] }> {
  const response = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { 'user-agent': userAgent, accept: 'application/json' } })
  const body = await response.json() as { visits?: Array<{ visitor: string, timestamp: string }> }
  const visits = (body.visits ?? []).map((v) => ({ visitor: agentOf(v.visitor), at: Date.parse(v.timestamp) }))
  for (const v of visits) service.shown.add(`${v.visitor} ${v.at}`)
  const cache = response.headers.get('x-cache')
  const own = visits.find((v) => v.visitor === userAgent)
  if (response.status === 200 && own !== undefined && cache !== 'hit') service.decided.set(`${userAgent} ${own.at}`, cache ?? '')
  return { status: response.status, cache, visits }
}

t.test('two instances under faults: the list is always what Firestore holds', async (t) => {
  const service = await startService(t)
  const { servers, redis, proxy } = service

  await checkExact(t, service, 'steady', await phase(service, 'steady', 3000))

  await checkExact(t, service, 'Redis killed', await phase(service, 'killed', 4000, async () => {
    await sleep(1000)
    await redis.stop()
    await sleep(1000)
    await redis.restart()
  }))

  await checkExact(t, service, 'Redis paused', await phase(service, 'paused', 3000, async () => {
    await sleep(1000)
    await redis.pause(1000)
  }))

  for (const [name, mode] of [['Firestore cut', 'reset'], ['Firestore blackholed', 'blackhole'], ['Firestore slow', 'slow']] as Array<[string, ProxyMode]>) {
    await checkExact(t, service, name, await phase(service, name, 4000, async () => {
      await sleep(1000)
      proxy.set(mode)
      await sleep(FIRESTORE_TIMEOUT_MS + 500)
      proxy.set('forward')
    }), { may503: true })
  }

  t.test('a write whose answer is lost: answered 503, then shown everywhere within seconds, with its stored time', async (t) => {
    proxy.set('drop-answers')
    const lost = await get(servers[0]!, 'lost answer', service)
    t.equal(lost.status, 503, 'the write is given up on')
    proxy.set('forward')
    const restored = Date.now()
    await waitFor('the write to be found stored', async () => (await storedVisits(service.db, service.collection)).some((v) => v.visitor === 'lost answer'), 5000)
    const stored = (await storedVisits(service.db, service.collection)).find((v) => v.visitor === 'lost answer')!
    // Other visitors keep arriving meanwhile, on both instances.
    await get(servers[1]!, 'after the lost answer', service)
    await waitFor('both instances to list it', async () => {
      const lists = await Promise.all(servers.map(async (server) => await get(server, 'after the lost answer', service)))
      return lists.every((list) => list.visits.some((v) => v.visitor === 'lost answer' && v.at === stored.at))
    }, 5000)
    t.ok(Date.now() - restored < 5000, `listed by both ${Date.now() - restored} ms after Firestore answered again`)
    const retry = await get(servers[1]!, 'lost answer', service)
    t.equal(retry.status, 200, 'the client\'s retry is served')
    t.same((await storedVisits(service.db, service.collection)).filter((v) => v.visitor === 'lost answer').length, retry.cache === 'hit' ? 1 : 2,
      'and stores a visit only if it is not the newest')
    await checkExact(t, service, 'lost answer', [])
  })

  t.test('an instance frozen while the other changes the list: never the old list after it thaws, no reconnect, no alarm', async (t) => {
    const [a, b] = servers as [Running, Running]
    const admin = new Redis({ host: '127.0.0.1', port: redis.port })
    t.teardown(() => { admin.disconnect() })
    for (let round = 0; round < 3; round++) {
      const regular = `frozen ${round}`
      await get(b, regular, service)
      await waitFor('b to serve the regular from its own copy', async () => (await get(b, regular, service)).cache === 'hit')
      const before = await redisCounters(admin)
      const logged = b.lines().length
      b.child.kill('SIGSTOP')
      await sleep(300)
      await get(a, `newcomer while frozen ${round}`, service)
      await sleep(2700)
      b.child.kill('SIGCONT')
      const thawed = await get(b, regular, service)
      t.equal(thawed.cache, 'update', `round ${round}: not the newest any more: the visit is stored`)
      t.same(thawed.visits.slice(0, 2).map((v) => v.visitor), [regular, `newcomer while frozen ${round}`], 'and the list shows what changed meanwhile')
      // A few requests later the process answers hits from its own copy again: no Redis command per hit.
      await waitFor('the in-process copy to be back', async () => {
        const start = await redisCounters(admin)
        for (let i = 0; i < 5; i++) await get(b, regular, service)
        return (await redisCounters(admin)).evalsha === start.evalsha
      }, 3000)
      const after = await redisCounters(admin)
      t.equal(after.connections - before.connections, 0, `round ${round}: no new connection to Redis`)
      t.same(b.lines().slice(logged).filter((l) => Number(l.level) >= 40).map((l) => l.message), [], 'nothing logged as a warning or an error')
    }
    await checkExact(t, service, 'freeze', [])
  })

  t.test('SIGTERM to one instance under load: it answers what it accepted and exits 0; the other lists what Firestore holds', async (t) => {
    const [a, b] = servers as [Running, Running]
    let signalledAt = Infinity
    const [onA, onB] = await phaseByInstance(service, 'SIGTERM', 3000, async () => {
      await sleep(1000)
      signalledAt = Date.now()
      b.child.kill('SIGTERM')
    }) as [LoadRecord[], LoadRecord[]]
    t.equal(await b.exited, 0, 'it exits 0')
    // Within its accept window every request is served; after it, a connection still in the kernel's queue as the port closes is reset unread.
    const served = onB.filter((r) => r.start < signalledAt + ANSWERED_AFTER_SIGNAL_MS)
    t.same(served.filter((r) => r.status !== 200).map((r) => `${r.seq}: ${r.status ?? r.error}`), [],
      `every request sent before the signal or just after it is answered 200 (${served.length})`)
    t.same(onB.filter((r) => r.status !== 200 && !REFUSED.has(r.error ?? '')).map((r) => `${r.seq}: ${r.status ?? r.error}`), [],
      'the later ones are answered 200 or refused at the connection, never cut mid-answer')
    service.servers = [a]
    await checkExact(t, service, 'SIGTERM', [...onA, ...onB.filter((r) => r.status === 200)])
  })
})
