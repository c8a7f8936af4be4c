/**
 * `npm run bench:scale`: the local simulation behind docs/scale.md. For each process count, that
 * many built servers (`node dist/server.js`) on one redis-server and one Firestore emulator of its
 * own (free 127.0.0.1 ports), visits spread over shards, under a mixed load for a bounded time:
 * a share of requests by a new visitor each (SCALE_NEW_SHARE), the rest by one returning visitor,
 * connections spread over the processes. Then the coherence checks: no error and no non-2xx
 * answer, no visit stored twice, every stored visit carries its shard, and the list every process
 * serves is the database's N latest, in order, to the millisecond. Reports throughput, server CPU
 * per response, Redis commands and the merge script's cost per response, per process count;
 * exits non-zero when a check fails. Stops everything it started, also on failure or a signal.
 *
 *   npm run bench:scale                         1 and 2 processes, 10 s each, 4 shards
 *   SCALE_PROCESSES=1,2,3 SCALE_SECONDS=20 npm run bench:scale
 *   tsx bench/scale.ts --smoke [--out FILE]     2 s each (test/bench-scale.test.ts)
 *
 * Options: --smoke, --out FILE (the results as JSON), SCALE_PROCESSES (1,2), SCALE_SECONDS (10),
 * SCALE_CONNECTIONS (50), SCALE_SHARDS (4), SCALE_NEW_SHARE (0.1), BENCH_FIRESTORE_EMULATOR=host:port
 * (use that emulator instead of starting one; it is left running).
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { availableParallelism, cpus } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import type { Firestore } from '@google-cloud/firestore'
import type { Redis } from 'ioredis'
import { RedisStore, withLists } from '@visitme/memcache'
import { createFirestore } from '../src/plugins/firestore.js'
import { SHARD_FIELD } from '../src/visits/shards.js'
import { freePort } from '../test/helpers/ports.js'
import { BenchError, Cleanup, cpuSeconds, imageNodeOptions, httpRequest, spawnTracked, stopProcess, waitFor, type Tracked } from './lib/processes.js'
import { startEmulator, startRedis, type Started } from './lib/services.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const serverJs = join(root, 'dist', 'server.js')
/** The list's length (VISITS_LIMIT's default). */
const LIMIT = 10
const RETURNING = 'scale returning visitor'

const cleanup = new Cleanup()
const started: Started[] = []
const log = (message: string): void => { process.stderr.write(`# ${message}\n`) }

function numberSetting (name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n < min || n > max) throw new BenchError(`${name}=${raw}: must be a number from ${min} to ${max}`)
  return n
}

function settings (argv: string[]) {
  const { values } = parseArgs({ args: argv, options: { smoke: { type: 'boolean', default: false }, out: { type: 'string' } } })
  const smoke = values.smoke
  const processes = (process.env.SCALE_PROCESSES ?? '1,2').split(',').map((p) => Number(p.trim()))
  if (processes.some((p) => !Number.isInteger(p) || p < 1 || p > 8)) throw new BenchError(`SCALE_PROCESSES=${process.env.SCALE_PROCESSES}: process counts from 1 to 8, comma-separated`)
  return {
    smoke,
    out: values.out,
    processes,
    seconds: numberSetting('SCALE_SECONDS', smoke ? 2 : 10, 1, 600),
    connections: numberSetting('SCALE_CONNECTIONS', smoke ? 10 : 50, 1, 1000),
    shards: numberSetting('SCALE_SHARDS', 4, 1, 100),
    newShare: numberSetting('SCALE_NEW_SHARE', 0.1, 0, 1)
  }
}
type Settings = ReturnType<typeof settings>

interface Check { name: string, ok: boolean, detail: string }

export interface ScaleRun {
  processes: number
  durationSeconds: number
  requests: number
  reqPerSec: number
  errors: number
  non2xx: number
  /** Responses by their x-cache header: hit (no round trip), update (a visit stored and merged), miss, bypass. */
  xCache: Record<string, number>
  /** Requests of a new visitor sent, and visits stored by the run (its documents). */
  newVisitorsSent: number
  visitsStored: number
  storedPerSec: number
  latencyMs: { p50: number, p99: number }
  /** CPU of each server process over the load, as a share of one core. */
  serverCpuPercent: number[]
  serverMicrosPerResponse: number
  /**
   * Commands Redis ran (those inside scripts included, as Redis counts them) and the time its one
   * thread spent in them (INFO commandstats): per response, per visit stored, and per EVALSHA, the
   * list scripts (the reservation, and the merge of the stored visit).
   */
  redis: { commandsPerResponse: number, commandsPerStoredVisit: number, evalshaPerStoredVisit: number, evalshaMicrosPerCall: number, microsPerStoredVisit: number, byCommand: Record<string, { calls: number, usec: number }> }
  checks: Check[]
}

/** One list script alone (INFO commandstats of the EVALSHAs it sent): Redis time per call, with reservations pending in the list. */
export interface ScriptCost { name: string, pending: number, calls: number, redisMicrosPerCall: number }

export interface ScaleResults {
  mode: 'smoke' | 'full'
  date: string
  machine: { cpuModel: string, cores: number, nodeVersion: string }
  settings: Omit<Settings, 'out' | 'smoke'>
  runs: ScaleRun[]
  scripts: ScriptCost[]
  started: Started[]
}

type CommandStats = Record<string, { calls: number, usec: number }>

async function commandStats (client: Redis): Promise<CommandStats> {
  const info = await client.info('commandstats')
  const stats: CommandStats = {}
  for (const [, name, calls, usec] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) stats[name!] = { calls: Number(calls), usec: Number(usec) }
  return stats
}

function difference (after: CommandStats, before: CommandStats): CommandStats {
  const delta: CommandStats = {}
  for (const [name, { calls, usec }] of Object.entries(after)) {
    const was = before[name] ?? { calls: 0, usec: 0 }
    if (calls > was.calls) delta[name] = { calls: calls - was.calls, usec: usec - was.usec }
  }
  return delta
}

async function startServer (index: number, env: Record<string, string>): Promise<{ url: string, tracked: Tracked, stop: () => Promise<void> }> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const tracked = spawnTracked(`server ${index}`, undefined, process.execPath, [serverJs], { cwd: root, env: { ...env, PORT: String(port) } })
  started.push({ what: `server ${index}`, pid: tracked.pid, port })
  const stop = cleanup.add(`server ${index}`, async () => { await stopProcess(tracked) })
  await waitFor(`server ${index}'s first 200 on GET /`, async () =>
    (await httpRequest(url, { headers: { 'user-agent': `scale warm-up ${index}` }, timeoutMs: 10_000 })).status === 200, 30_000, tracked, 20)
  return { url, tracked, stop }
}

interface Shown { visitor: string, timestamp: string }

async function listOf (url: string, userAgent: string): Promise<{ status: number, cache: string, visits: Shown[] }> {
  const answer = await httpRequest(url, { headers: { 'user-agent': userAgent, accept: 'application/json' } })
  const visits = answer.status === 200 ? (JSON.parse(answer.body.toString()) as { visits: Shown[] }).visits : []
  return { status: answer.status, cache: String(answer.headers['x-cache']), visits }
}

async function load (urls: string[], { seconds, connections, newShare }: Settings) {
  let newSent = 0
  let sent = 0
  const xCache: Record<string, number> = {}
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon({
      url: (urls.length === 1 ? urls[0]! : urls) as string,
      connections,
      duration: seconds,
      timeout: 10,
      headers: { accept: 'application/json' },
      requests: [{
        method: 'GET',
        path: '/',
        // Every request picks its visitor: a new one (a fresh user agent) or the returning one.
        setupRequest: (request) => {
          sent++
          const fresh = Math.random() < newShare
          if (fresh) newSent++
          return { ...request, headers: { ...request.headers, 'user-agent': fresh ? `scale new ${newSent} ${randomBytes(4).toString('hex')}` : RETURNING } }
        }
      }],
      setupClient: (client) => {
        let value = 'none'
        client.on('headers', (info: unknown) => {
          const raw = (info as { headers?: unknown[] }).headers ?? []
          for (let i = 0; i + 1 < raw.length; i += 2) if (String(raw[i]).toLowerCase() === 'x-cache') value = String(raw[i + 1])
        })
        client.on('response', () => { xCache[value] = (xCache[value] ?? 0) + 1; value = 'none' })
      }
    }, (err, res) => { if (err !== null && err !== undefined) reject(err); else resolve(res) })
  })
  return { result, newSent, sent, xCache }
}

async function storedVisits (db: Firestore, collection: string) {
  const snapshot = await db.collection(collection).get()
  return snapshot.docs.map((doc) => ({ id: doc.id, visitor: String(doc.get('visitor')), shard: doc.get(SHARD_FIELD) as unknown }))
}

/** The list as the database orders it (Firestore's own query, which the emulator answers without an index). */
async function latestStored (db: Firestore, collection: string): Promise<string[]> {
  const snapshot = await db.collection(collection).orderBy('timestamp', 'desc').limit(LIMIT).get()
  return snapshot.docs.map((doc) => `${String(doc.get('visitor'))} ${(doc.get('timestamp') as { toDate: () => Date }).toDate().toISOString()}`)
}

async function run (count: number, config: Settings, backends: { redisPort: number, redis: Redis, emulator: string, db: Firestore, nodeOptions: string }): Promise<ScaleRun> {
  const collection = `scale_${count}_${randomBytes(3).toString('hex')}`
  const env = {
    PATH: process.env.PATH ?? '',
    NODE_OPTIONS: backends.nodeOptions,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    REDISHOST: '127.0.0.1',
    REDISPORT: String(backends.redisPort),
    FIRESTORE_EMULATOR_HOST: backends.emulator,
    GOOGLE_CLOUD_PROJECT: 'demo-visitme',
    METADATA_SERVER_DETECTION: 'none',
    VISITS_COLLECTION: collection,
    VISITS_SHARDS: String(config.shards),
    CACHE_NAMESPACE: collection.replaceAll('_', '-'),
    RATE_LIMIT_WRITES: '0'
  }
  const servers = await Promise.all(Array.from({ length: count }, async (_, i) => await startServer(i + 1, env)))
  log(`${count} process(es) on ${servers.map((s) => s.url).join(' ')}, ${config.shards} shard(s), collection ${collection}`)
  const redisBefore = await commandStats(backends.redis)
  const cpuBefore = servers.map((s) => cpuSeconds(s.tracked.pid))
  const startedAt = performance.now()
  const { result, newSent, xCache } = await load(servers.map((s) => s.url), config)
  const wall = (performance.now() - startedAt) / 1000
  const cpu = servers.map((s, i) => cpuSeconds(s.tracked.pid) - cpuBefore[i]!)
  const redis = difference(await commandStats(backends.redis), redisBefore)

  // The checks, after a quiet second: writes answered late have landed, announcements are heard.
  await sleep(1000)
  const checks: Check[] = []
  const check = (name: string, ok: boolean, detail: string) => { checks.push({ name, ok, detail }) }
  const requests = Object.values(result.statusCodeStats ?? {}).reduce((sum, { count }) => sum + (count ?? 0), 0)
  check('no error', result.errors === 0 && result.timeouts === 0, `${result.errors} errors, ${result.timeouts} timeouts`)
  check('every answer 2xx', result.non2xx === 0, `${result.non2xx} non-2xx of ${requests}`)
  const stored = await storedVisits(backends.db, collection)
  const perVisitor = new Map<string, number>()
  for (const v of stored) if (v.visitor.includes('scale new ')) perVisitor.set(v.visitor, (perVisitor.get(v.visitor) ?? 0) + 1)
  const twice = [...perVisitor.values()].filter((n) => n > 1).length
  check('no new visitor stored twice', twice === 0, `${perVisitor.size} new visitors stored, ${twice} more than once, ${newSent} sent`)
  const unsharded = stored.filter((v) => config.shards > 1 && !(Number.isInteger(v.shard) && (v.shard as number) >= 0 && (v.shard as number) < config.shards)).length
  check('every visit in a shard', unsharded === 0, config.shards === 1 ? 'one shard: no shard field' : `${unsharded} of ${stored.length} without a shard of 0-${config.shards - 1}`)
  // A probe visitor stores one visit through the first process, then reads each process's list (a hit where it is the newest).
  let truth: string[] = []
  let lists: string[][] = []
  for (let attempt = 0; attempt < 3; attempt++) {
    await listOf(servers[0]!.url, 'scale probe')
    await sleep(200)
    lists = await Promise.all(servers.map(async (s) => (await listOf(s.url, 'scale probe')).visits.map((v) => `${v.visitor} ${v.timestamp}`)))
    truth = await latestStored(backends.db, collection)
    if (lists.every((list) => JSON.stringify(list) === JSON.stringify(truth))) break
    await sleep(1000)
  }
  lists.forEach((list, i) => check(`process ${i + 1} lists the ${LIMIT} latest stored`, JSON.stringify(list) === JSON.stringify(truth),
    JSON.stringify(list) === JSON.stringify(truth) ? `${list.length} visits, the probe first` : `served ${JSON.stringify(list)}, stored ${JSON.stringify(truth)}`))

  for (const server of servers) await server.stop()
  // The harness's own INFO is not the service's.
  delete redis.info
  const totalRedis = Object.values(redis).reduce((sum, c) => sum + c.calls, 0)
  const redisMicros = Object.values(redis).reduce((sum, c) => sum + c.usec, 0)
  const visits = Math.max(1, stored.length)
  const evalsha = redis.evalsha ?? { calls: 0, usec: 0 }
  const durationSeconds = result.duration || wall
  return {
    processes: count,
    durationSeconds,
    requests,
    reqPerSec: requests / durationSeconds,
    errors: result.errors,
    non2xx: result.non2xx,
    xCache,
    newVisitorsSent: newSent,
    visitsStored: stored.length,
    storedPerSec: stored.length / durationSeconds,
    latencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
    serverCpuPercent: cpu.map((seconds) => seconds / wall * 100),
    serverMicrosPerResponse: cpu.reduce((a, b) => a + b, 0) * 1e6 / Math.max(1, requests),
    redis: {
      commandsPerResponse: totalRedis / Math.max(1, requests),
      commandsPerStoredVisit: totalRedis / visits,
      evalshaPerStoredVisit: evalsha.calls / visits,
      evalshaMicrosPerCall: evalsha.calls === 0 ? 0 : evalsha.usec / evalsha.calls,
      microsPerStoredVisit: redisMicros / visits,
      byCommand: redis
    },
    checks
  }
}

/**
 * The list scripts one call at a time on the run's Redis, on a list of LIMIT visits with `pending`
 * reservations of writes in flight: a page view of the newest visitor without the in-process copy
 * (listReserve answers `same`), and a new visit (listReserve, then listAdd settling it).
 */
async function scriptCosts (client: Redis, calls: number): Promise<ScriptCost[]> {
  const store = withLists(new RedisStore(client))
  const costs: ScriptCost[] = []
  for (const pending of [0, 10, 100]) {
    const key = `scale-scripts-${pending}-${randomBytes(3).toString('hex')}`
    await store.listBegin(key, 60_000)
    const now = Date.now()
    await store.listAdd(key, Array.from({ length: LIMIT }, (_, i) => ({ id: `v${i}`, order: now - i, value: JSON.stringify(`visitor ${i}`) })), LIMIT, 3_600_000)
    for (let i = 0; i < pending; i++) await store.listReserve(key, { value: JSON.stringify(`pending ${i}`), seed: `pending ${i}`, order: Date.now() }, LIMIT, 60_000)
    const newest = JSON.stringify('visitor 0')
    const measure = async (name: string, call: (i: number) => Promise<unknown>): Promise<void> => {
      const before = (await commandStats(client)).evalsha ?? { calls: 0, usec: 0 }
      for (let i = 0; i < calls; i++) await call(i)
      const after = (await commandStats(client)).evalsha ?? { calls: 0, usec: 0 }
      costs.push({ name, pending, calls: after.calls - before.calls, redisMicrosPerCall: (after.usec - before.usec) / Math.max(1, after.calls - before.calls) })
    }
    if (pending === 0) await measure('page view of the newest visitor (listReserve: same)', async () => await store.listReserve(key, { value: newest, seed: 'visitor 0', order: Date.now() }, LIMIT, 60_000))
    await measure('new visit (listReserve, then listAdd)', async (i) => {
      const value = JSON.stringify(`new ${pending} ${i}`)
      const reserved = await store.listReserve(key, { value, seed: `new ${i}`, order: Date.now() }, LIMIT, 60_000)
      if (reserved?.outcome !== 'reserved') throw new BenchError(`the script bench expected a reservation, got ${reserved?.outcome ?? 'no list'}`)
      await store.listAdd(key, [{ id: reserved.id, order: reserved.order, value }], LIMIT)
    })
    await client.del(key)
  }
  return costs
}

const fixed = (n: number, digits = 0) => Number.isFinite(n) ? n.toFixed(digits) : '–'

function markdown (results: ScaleResults): string {
  const { settings: s } = results
  const lines = [
    `Mixed load, ${s.seconds} s per process count, ${s.connections} connections spread over the processes, ` +
      `${Math.round(s.newShare * 100)} % of requests by a new visitor, the rest by one returning visitor; VISITS_SHARDS=${s.shards}; ` +
      `${results.machine.cores} × ${results.machine.cpuModel}, Node ${results.machine.nodeVersion}, nothing pinned (servers, autocannon, Redis and the emulator share the cores).`,
    '',
    '| processes | req/s | hits | visits stored | stored/s | p50 / p99 ms | server CPU % (each) | server µs/response | Redis cmds/response | Redis cmds/stored visit | EVALSHA/stored visit | EVALSHA µs/call | Redis µs/stored visit | errors / non-2xx | coherent |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'
  ]
  for (const r of results.runs) {
    lines.push(`| ${r.processes} | ${fixed(r.reqPerSec)} | ${r.xCache.hit ?? 0} | ${r.visitsStored} | ${fixed(r.storedPerSec)} | ${fixed(r.latencyMs.p50)} / ${fixed(r.latencyMs.p99)} | ` +
      `${r.serverCpuPercent.map((p) => fixed(p)).join(' / ')} | ${fixed(r.serverMicrosPerResponse, 1)} | ${fixed(r.redis.commandsPerResponse, 2)} | ` +
      `${fixed(r.redis.commandsPerStoredVisit, 1)} | ${fixed(r.redis.evalshaPerStoredVisit, 2)} | ${fixed(r.redis.evalshaMicrosPerCall, 1)} | ${fixed(r.redis.microsPerStoredVisit, 1)} | ${r.errors} / ${r.non2xx} | ${r.checks.every((c) => c.ok) ? 'yes' : 'NO'} |`)
  }
  lines.push('', 'The list scripts alone, one call at a time (Redis time per EVALSHA, INFO commandstats):', '',
    '| script | reservations pending | EVALSHA calls | Redis µs per call |', '| --- | --- | --- | --- |',
    ...results.scripts.map((c) => `| ${c.name} | ${c.pending} | ${c.calls} | ${fixed(c.redisMicrosPerCall, 1)} |`))
  const failed = results.runs.flatMap((r) => r.checks.filter((c) => !c.ok).map((c) => `- ${r.processes} process(es): ${c.name}: ${c.detail}`))
  return [...lines, ...(failed.length > 0 ? ['', 'Failed checks:', ...failed] : [])].join('\n')
}

async function main (): Promise<void> {
  const config = settings(process.argv.slice(2))
  // Bounded as a whole: each run's start, load and checks, and the emulator's start.
  setTimeout(() => { finish(1, 'took too long: stopping what was started').catch(() => process.exit(1)) },
    (90 + config.processes.length * (config.seconds + 90)) * 1000).unref()
  if (!existsSync(serverJs)) throw new BenchError(`${serverJs} is missing: run npm run build (npm run bench:scale does)`)
  const harness = { cleanup, started, log }
  const { port: redisPort, client: redis } = await startRedis(harness)
  const emulator = process.env.BENCH_FIRESTORE_EMULATOR !== undefined && process.env.BENCH_FIRESTORE_EMULATOR !== ''
    ? process.env.BENCH_FIRESTORE_EMULATOR
    : await startEmulator(harness)
  const db = await createFirestore({ databaseId: '(default)', emulatorHost: emulator })
  cleanup.add('the harness\'s Firestore client', async () => { await db.terminate() })
  // As the image runs it (the Dockerfile's ENV line).
  const nodeOptions = await imageNodeOptions(root)

  const runs: ScaleRun[] = []
  for (const count of config.processes) runs.push(await run(count, config, { redisPort, redis, emulator, db, nodeOptions }))
  const scripts = await scriptCosts(redis, config.smoke ? 50 : 2000)
  const { out, smoke, ...kept } = config
  const results: ScaleResults = {
    mode: smoke ? 'smoke' : 'full',
    date: new Date().toISOString(),
    machine: { cpuModel: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), nodeVersion: process.versions.node },
    settings: kept,
    runs,
    scripts,
    started
  }
  process.stdout.write(`${markdown(results)}\n`)
  if (out !== undefined) await writeFile(out, `${JSON.stringify(results, null, 2)}\n`)
  const failed = runs.some((r) => r.checks.some((c) => !c.ok))
  await finish(failed ? 1 : 0, failed ? 'a coherence check failed (see the table)' : undefined)
}

let finishing = false
async function finish (code: number, message?: string): Promise<void> {
  if (finishing) return
  finishing = true
  if (message !== undefined) process.stderr.write(`bench:scale: ${message}\n`)
  const problems = await cleanup.stopAll()
  for (const problem of problems) process.stderr.write(`bench:scale: could not stop ${problem}\n`)
  process.exit(problems.length > 0 && code === 0 ? 1 : code)
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => { finish(130, `interrupted (${signal}): stopping what was started`).catch(() => process.exit(130)) })
}
main().catch((err: unknown) => { finish(1, err instanceof BenchError ? err.message : (err as Error).stack ?? String(err)).catch(() => process.exit(1)) })
