/**
 * `npm run bench`: benchmarks the built server (dist/server.js) in five scenarios, LIMIT, HIT,
 * HIT+OTEL, NEW and COLD (see bench/README.md), against a redis-server and a Firestore emulator of its own
 * on free 127.0.0.1 ports, with the server pinned to one core and the load generator to another.
 * Prints a Markdown table and writes <out>/latest.{json,md,svg}; stops everything it started, also
 * on failure or a signal, and exits non-zero with one message when something goes wrong.
 *
 *   npm run bench                       10 s per scenario, results in bench/results/
 *   BENCH_SECONDS=30 npm run bench      longer scenarios
 *   tsx bench/run.ts --smoke            ~1 s per scenario, results in a temporary directory
 *
 * Options (bench/README.md): --smoke (or BENCH_SMOKE=1), --out DIR (or BENCH_OUT), BENCH_SECONDS,
 * BENCH_WARMUP_SECONDS, BENCH_CONNECTIONS (100), BENCH_COLD_EXPIRY (del | ttl), BENCH_COLD_TTL (1 s),
 * BENCH_COLD_DELETE_MS (1000), BENCH_LIBRARY_SECONDS (6: per side, for each operation of the library section), BENCH_SERVER (dist/server.js) and BENCH_SERVER_LABEL (what that build is),
 * BENCH_NODE_OPTIONS (instead of the Dockerfile's), BENCH_FIRESTORE_EMULATOR=127.0.0.1:PORT
 * (use that emulator instead of starting one; it is left running).
 */
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'
import { Redis } from 'ioredis'
import type { LoadResult, LoadSettings } from './load.js'
import {
  BenchError, Cleanup, allowedCpus, choosePinning, coreTimes, cpuSeconds, cpuTimes, httpRequest, imageNodeOptions,
  pinSelf, sampleRss, spawnTracked, stopProcess, waitFor, type Pinning, type Tracked
} from './lib/processes.js'
import { benchLibraryApart } from './lib/library.js'
import { startEmulator, startRedis } from './lib/services.js'
import { measureColdStarts, median, type ColdStartVariant } from './lib/cold-start.js'
import { recentVisitsStoreKey } from '../src/visits/cache-keys.js'
import { freePort } from '../test/helpers/ports.js'
import {
  markdown, serverMicrosPerResponse, svgChart, type BenchResults, type ColdStart, type PerRequest, type ScenarioResult, type SideBySide, type SideBySideServer
} from './lib/report.js'

const root = fileURLToPath(new URL('..', import.meta.url))
let serverJs = join(root, 'dist', 'server.js')
const defaultOut = join(root, 'bench', 'results')

// ---------------------------------------------------------------------------------------------
// Options

function numberOption (name: string, fallback: number, { min, max }: { min: number, max: number }): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) throw new BenchError(`${name}=${JSON.stringify(raw)} is invalid: must be a number from ${min} to ${max}`)
  return value
}

function parseOptions (argv: string[]): { smoke: boolean, out?: string } {
  let smoke = process.env.BENCH_SMOKE === '1' || process.env.BENCH_SMOKE === 'true'
  let out = process.env.BENCH_OUT === '' ? undefined : process.env.BENCH_OUT
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--smoke') smoke = true
    else if (arg === '--out') out = argv[++i] ?? (() => { throw new BenchError('--out needs a directory') })()
    else if (arg.startsWith('--out=')) out = arg.slice('--out='.length)
    else throw new BenchError(`unknown argument ${JSON.stringify(arg)} (known: --smoke, --out DIR)`)
  }
  return { smoke, out }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle: everything started is stopped, whatever ends the run.

const cleanup = new Cleanup()
const started: BenchResults['started'] = []
let finishing: number | undefined

function log (message: string): void {
  process.stderr.write(`# ${message}\n`)
}

async function finish (code: number, message?: string): Promise<never> {
  if (finishing !== undefined) {
    // A signal relayed twice (npm, tsx) is ignored; one sent again later means: leave now.
    if (code === 130 && Date.now() - finishing > 2000) {
      process.stderr.write('bench: interrupted again: exiting without waiting for the rest to stop\n')
      process.exit(code)
    }
    return await new Promise<never>(() => {})
  }
  finishing = Date.now()
  if (message !== undefined) process.stderr.write(`\nbench: ${message}\n`)
  const problems = await cleanup.stopAll()
  for (const problem of problems) process.stderr.write(`bench: could not stop ${problem}\n`)
  process.exit(problems.length > 0 && code === 0 ? 1 : code)
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => { finish(130, `interrupted (${signal}): stopping what was started`).catch(() => process.exit(130)) })
}
process.on('uncaughtException', (err) => { finish(1, `unexpected error: ${err.stack ?? String(err)}`).catch(() => process.exit(1)) })
process.on('unhandledRejection', (err) => { finish(1, `unexpected error: ${(err as Error)?.stack ?? String(err)}`).catch(() => process.exit(1)) })
process.stdout.on('error', () => {})

// ---------------------------------------------------------------------------------------------
// Helper scripts: plain JavaScript, so the LIMIT server runs exactly as the real one (node file.js).

async function transpile (name: string): Promise<string> {
  const ts = (await import('typescript')).default
  const source = await readFile(join(root, 'bench', `${name}.ts`), 'utf8')
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    fileName: `${name}.ts`
  })
  // Under node_modules, so 'fastify' and 'autocannon' resolve from the project; git ignores it.
  const dir = join(root, 'node_modules', '.cache', 'visitme-bench')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${name}.mjs`)
  await writeFile(file, outputText)
  return file
}

// ---------------------------------------------------------------------------------------------
// Redis and the Firestore emulator

interface RedisCounts { total: number, byCommand: Record<string, number> }

async function redisCounts (client: Redis): Promise<RedisCounts> {
  const info = await client.info('stats', 'commandstats')
  const total = Number(/^total_commands_processed:(\d+)/m.exec(info)?.[1] ?? Number.NaN)
  const byCommand: Record<string, number> = {}
  for (const [, name, calls] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCommand[name!] = Number(calls)
  return { total, byCommand }
}

// ---------------------------------------------------------------------------------------------
// Servers

interface Server {
  name: string
  tracked: Tracked
  url: string
  /** The real server has GET /stats; the LIMIT server does not. */
  real: boolean
  stop: () => Promise<void>
}

/** Headers Node writes by itself for any response; the rest is what the page's response carries. */
const TRANSPORT_HEADERS = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])

function pageHeaders (headers: Record<string, string | string[] | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers)
    .filter(([name, value]) => !TRANSPORT_HEADERS.has(name) && typeof value === 'string') as Array<[string, string]>)
}

async function startLimitServer (limitJs: string, core: number | undefined, page: { body: Buffer, headers: Record<string, string> }, dir: string): Promise<Server> {
  const bodyFile = join(dir, 'hit-page.html')
  await writeFile(bodyFile, page.body)
  const port = await freePort()
  const tracked = spawnTracked('LIMIT server', core, process.execPath, [limitJs], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: await imageNodeOptions(root), PORT: String(port), HOST: '127.0.0.1', BENCH_BODY_FILE: bodyFile, BENCH_HEADERS: JSON.stringify(page.headers) }
  })
  started.push({ what: 'LIMIT server', pid: tracked.pid, port })
  const stop = cleanup.add('LIMIT server', async () => { await stopProcess(tracked) })
  const url = `http://127.0.0.1:${port}/`
  await waitFor('the LIMIT server', async () => (await httpRequest(url, { timeoutMs: 2000 })).status === 200, 15_000, tracked, 20)
  const answer = await httpRequest(url)
  if (!answer.body.equals(page.body) || JSON.stringify(pageHeaders(answer.headers)) !== JSON.stringify(page.headers)) {
    throw new BenchError('the LIMIT server does not answer with the HIT page\'s bytes and headers')
  }
  return { name: 'LIMIT', tracked, url, real: false, stop }
}

async function startRealServer (name: string, core: number | undefined, env: Record<string, string>, userAgent: string): Promise<Server & { coldStartMs: number }> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/`
  const spawnedAt = performance.now()
  const tracked = spawnTracked(`server ${name}`, core, process.execPath, [serverJs], { cwd: root, env: { ...env, PORT: String(port) } })
  started.push({ what: `server ${name}`, pid: tracked.pid, port })
  const stop = cleanup.add(`server ${name}`, async () => { await stopProcess(tracked) })
  // Cold start: from the spawn to the first 200 on GET / (connections are refused until it listens).
  let lastStatus = 0
  await waitFor(`server ${name}'s first 200 on GET /`, async () => {
    lastStatus = (await httpRequest(url, { headers: { 'user-agent': userAgent }, timeoutMs: 10_000 })).status
    return lastStatus === 200
  }, 30_000, tracked, 5).catch((err: Error) => {
    throw new BenchError(`${err.message}${lastStatus === 0 ? '' : ` (last status ${lastStatus})`}`)
  })
  const coldStartMs = performance.now() - spawnedAt
  log(`server ${name} on ${url} (pid ${tracked.pid}): first 200 after ${Math.round(coldStartMs)} ms`)
  return { name, tracked, url, real: true, stop, coldStartMs }
}

/** An OTLP/HTTP receiver that reads what it is sent and acknowledges it, counting requests and bytes. */
async function startOtlpSink (): Promise<{ url: string, exports: () => number, bytes: () => number, stop: () => Promise<void> }> {
  let exports = 0
  let bytes = 0
  const server = createServer((request, response) => {
    exports++
    request.on('data', (chunk: Buffer) => { bytes += chunk.length })
    request.on('end', () => { response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const stop = cleanup.add('the OTLP sink', async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, exports: () => exports, bytes: () => bytes, stop }
}

async function visitsUsage (server: Server): Promise<PerRequest> {
  const answer = await httpRequest(new URL('/stats', server.url).href, { headers: { accept: 'application/json' } })
  if (answer.status !== 200) throw new BenchError(`GET /stats of server ${server.name} answered ${answer.status}`)
  const usage = (JSON.parse(answer.body.toString()) as { instance?: { visits?: Partial<PerRequest> } }).instance?.visits
  if (typeof usage?.queries !== 'number' || typeof usage.documentsRead !== 'number' || typeof usage.writes !== 'number') {
    throw new BenchError(`GET /stats (JSON) of server ${server.name} has no instance.visits = { queries, documentsRead, writes }`)
  }
  return { queries: usage.queries, documentsRead: usage.documentsRead, writes: usage.writes }
}

// ---------------------------------------------------------------------------------------------
// One scenario: warm-up, "before" counts, measured load, "after" counts.

interface ScenarioPlan {
  name: ScenarioResult['name']
  description: string
  servers: Server[]
  userAgent: string
  unique: boolean
  /**
   * COLD: how the cached list goes away during the window: it expires (the servers' TTL; counted
   * from Redis' keyspace notifications), or the harness deletes it every everyMs (counted by DEL's reply).
   */
  expire?: { key: string, mode: 'ttl', ttlSeconds: number } | { key: string, mode: 'del', everyMs: number }
  /** Each server gets its own share of the connections, all loaded at once (the load generator reports each apart). */
  separately?: boolean
}

interface Context {
  /** redis-server and the emulator's processes (when started here): their CPU on the load core is accounted for. */
  backendPids: number[]
  loadJs: string
  pinning: Pinning
  redis: Redis
  connections: number
  warmupSeconds: number
  seconds: number
}

async function runLoad<Result = LoadResult> (ctx: Context, plan: ScenarioPlan, measure: () => Promise<() => Promise<void>>): Promise<Result> {
  const settings: LoadSettings = {
    urls: plan.servers.map((s) => s.url),
    connections: ctx.connections,
    warmupSeconds: ctx.warmupSeconds,
    seconds: ctx.seconds,
    userAgent: plan.userAgent,
    unique: plan.unique,
    separately: plan.separately
  }
  const loader = spawnTracked(`load generator (${plan.name})`, ctx.pinning.loadCore, process.execPath, [ctx.loadJs], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', BENCH_LOAD: JSON.stringify(settings) },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  started.push({ what: `load generator (${plan.name})`, pid: loader.pid })
  const stopLoader = cleanup.add(`load generator (${plan.name})`, async () => { loader.child.stdin?.destroy(); await stopProcess(loader, 3000) })
  loader.child.stdin!.on('error', () => {})
  const lines = createInterface({ input: loader.child.stdout! })
  const waiting = new Map<string, (rest: string) => void>()
  lines.on('line', (line) => {
    const [word, ...rest] = line.split(' ')
    waiting.get(word!)?.(rest.join(' '))
  })
  const expect = async (word: string, timeoutMs: number): Promise<string> => await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new BenchError(`${plan.name}: the load generator did not say ${word} within ${timeoutMs / 1000} s\n${loader.output().trim()}`)), timeoutMs)
    loader.exited.then((code) => {
      clearTimeout(timer)
      reject(new BenchError(`${plan.name}: the load generator exited (code ${code}) before ${word}\n${loader.output().trim()}`))
    }).catch(() => {})
    waiting.set(word, (rest) => { clearTimeout(timer); resolve(rest) })
  })
  const ready = expect('READY', (ctx.warmupSeconds + 30) * 1000)
  await ready
  const finishMeasuring = await measure()
  const result = expect('RESULT', (ctx.seconds + 30) * 1000)
  loader.child.stdin!.write('GO\n')
  const raw = await result
  await finishMeasuring()
  await stopLoader()
  return JSON.parse(raw) as Result
}

async function runScenario (ctx: Context, plan: ScenarioPlan): Promise<ScenarioResult> {
  log(`${plan.name}: ${ctx.warmupSeconds} s warm-up, then ${ctx.seconds} s with ${ctx.connections} connections on ${plan.servers.map((s) => s.url).join(' and ')}`)
  const real = plan.servers.filter((s) => s.real)
  const pids = plan.servers.map((s) => s.tracked.pid)
  type Snapshot = {
    usage: PerRequest[], redis: RedisCounts, cpu: number[], backendCpu: number, core: ReturnType<typeof coreTimes>, loadCore: ReturnType<typeof coreTimes>, at: number
  }
  const backendCpu = (): number => ctx.backendPids.map(cpuSeconds).filter(Number.isFinite).reduce((a, b) => a + b, 0)
  let before: Snapshot | undefined
  let after: Snapshot | undefined
  let rssKb: number[] = []
  const expiry = { deletes: 0, expiries: 0, announcements: 0, failed: 0, counting: false }

  // TTL mode: Redis announces each expiry of the key (notifications of expired keys only, 'Kx').
  let subscriber: Redis | undefined
  if (plan.expire?.mode === 'ttl') {
    await ctx.redis.config('SET', 'notify-keyspace-events', 'Kx')
    subscriber = ctx.redis.duplicate()
    subscriber.on('error', () => {})
    const sub = subscriber
    cleanup.add('the harness\'s Redis subscriber', async () => { sub.disconnect() })
    const channel = `__keyspace@0__:${plan.expire.key}`
    subscriber.on('message', (from: string, event: string) => {
      if (from === channel && event === 'expired' && expiry.counting) expiry.expiries++
    })
    await subscriber.subscribe(channel)
  }

  const load = await runLoad(ctx, plan, async () => {
    // /stats is read outside the Redis window: its own cache work is not counted.
    const usage = await Promise.all(real.map(visitsUsage))
    const redis = await redisCounts(ctx.redis)
    const sampler = sampleRss(pids)
    let timer: NodeJS.Timeout | undefined
    const deleting = new Set<Promise<void>>()
    if (plan.expire?.mode === 'del') {
      const { key, everyMs } = plan.expire
      timer = setInterval(() => {
        // Deleted as the app deletes the list itself: DEL, then the announcement Cache.announce() sends on
        // the key's channel, so a process that keeps its own copy of the list drops it too.
        const del: Promise<void> = (async () => {
          const n = await ctx.redis.del(key)
          expiry.deletes++
          if (n === 1) expiry.expiries++
          await ctx.redis.publish(key, 'changed')
          expiry.announcements++
        })().catch(() => { expiry.failed++ }).finally(() => deleting.delete(del))
        deleting.add(del)
      }, everyMs)
    }
    expiry.counting = true
    before = { usage, redis, cpu: pids.map(cpuSeconds), backendCpu: backendCpu(), core: coreTimes(ctx.pinning.serverCore), loadCore: coreTimes(ctx.pinning.loadCore), at: performance.now() }
    return async () => {
      const at = performance.now()
      const cpu = pids.map(cpuSeconds)
      const core = coreTimes(ctx.pinning.serverCore)
      const loadCore = coreTimes(ctx.pinning.loadCore)
      const backends = backendCpu()
      expiry.counting = false
      clearInterval(timer)
      await Promise.all(deleting)
      rssKb = sampler.stop()
      const redisAfter = await redisCounts(ctx.redis)
      after = { usage: await Promise.all(real.map(visitsUsage)), redis: redisAfter, cpu, backendCpu: backends, core, loadCore, at }
    }
  })
  if (subscriber !== undefined) {
    subscriber.disconnect()
    await ctx.redis.config('SET', 'notify-keyspace-events', '')
  }
  if (before === undefined || after === undefined) throw new BenchError(`${plan.name}: the measured window was not recorded`)
  if (load.requests === 0) {
    throw new BenchError(`${plan.name}: no request completed in ${ctx.seconds} s with ${ctx.connections} connections ` +
      '(every request took longer than the window): lengthen BENCH_SECONDS or lower BENCH_CONNECTIONS')
  }
  if (expiry.failed > 0) throw new BenchError(`${plan.name}: ${expiry.failed} DEL commands of the harness failed`)

  const requests = load.requests
  const div = (n: number): number => requests === 0 ? Number.NaN : n / requests
  const firestore = real.length === 0
    ? null
    : (() => {
        const delta = (k: keyof PerRequest): number => after!.usage.reduce((sum, u, i) => sum + u[k] - before!.usage[i]![k], 0)
        const totals = { queries: delta('queries'), documentsRead: delta('documentsRead'), writes: delta('writes') }
        return { ...totals, perRequest: { queries: div(totals.queries), documentsRead: div(totals.documentsRead), writes: div(totals.writes) } }
      })()

  // Redis: the harness's own commands in the window are its INFO "before" snapshot, and COLD's DELs and
  // PUBLISHes (INFO counts itself only after it ran, so the "after" one falls outside the window).
  const mine: Record<string, number> = { info: 1, del: expiry.deletes, publish: expiry.announcements }
  const harness = Object.values(mine).reduce((a, b) => a + b, 0)
  const byCommand: Record<string, number> = {}
  for (const [name, calls] of Object.entries(after.redis.byCommand)) {
    const delta = calls - (before.redis.byCommand[name] ?? 0) - (mine[name] ?? 0)
    if (delta !== 0) byCommand[name] = delta
  }
  const background = byCommand.hincrby ?? 0
  const commands = after.redis.total - before.redis.total - harness - background

  const windowSeconds = (after.at - before.at) / 1000
  const serverCpuPercent = pids.map((_pid, i) => (after!.cpu[i]! - before!.cpu[i]!) / windowSeconds * 100)
  // A core's busy share over the window, and the part of it spent in interrupts (the loopback network, no process's).
  const shareOf = (from: ReturnType<typeof coreTimes>, to: ReturnType<typeof coreTimes>): { busy: number, irq: number } | undefined =>
    from === undefined || to === undefined || to.total === from.total
      ? undefined
      : { busy: (to.busy - from.busy) / (to.total - from.total) * 100, irq: (to.irq - from.irq) / (to.total - from.total) * 100 }
  const serverShare = shareOf(before.core, after.core)
  const serverCore = serverShare === undefined
    ? null
    : {
        busyPercent: serverShare.busy,
        irqPercent: serverShare.irq,
        otherPercent: Math.max(0, serverShare.busy - serverShare.irq - serverCpuPercent.reduce((a, b) => a + b, 0))
      }
  const loadShare = shareOf(before.loadCore, after.loadCore)
  const loadCore = loadShare === undefined
    ? null
    : (() => {
        const backendsPercent = (after.backendCpu - before.backendCpu) / windowSeconds * 100
        return {
          busyPercent: loadShare.busy,
          irqPercent: loadShare.irq,
          loaderPercent: load.cpuPercent,
          backendsPercent,
          otherPercent: Math.max(0, loadShare.busy - loadShare.irq - load.cpuPercent - backendsPercent)
        }
      })()

  const nonHits = real.length === 0 ? null : requests - (load.xCache.hit ?? 0)
  const result: ScenarioResult = {
    name: plan.name,
    description: plan.description,
    servers: plan.servers.length,
    connections: ctx.connections,
    requests,
    durationSeconds: load.durationSeconds,
    reqPerSec: requests / load.durationSeconds,
    ratioToLimit: null,
    latencyMs: load.latencyMs,
    autocannonLatencyMs: load.autocannonLatencyMs,
    errors: load.errors,
    timeouts: load.timeouts,
    non2xx: load.non2xx,
    statusCodes: load.statusCodes,
    xCache: load.xCache,
    nonHits,
    nonHitShare: nonHits === null ? null : div(nonHits),
    firestore,
    redis: { commands, perRequest: div(commands), harness, background, byCommand },
    rssMaxMB: rssKb.map((kb) => kb / 1024),
    serverCpuPercent,
    loaderCpuPercent: load.cpuPercent,
    serverCore,
    loadCore
  }
  if (plan.expire !== undefined) {
    const perExpiry = (n: number | undefined): number | null => expiry.expiries === 0 || n === undefined ? null : n / expiry.expiries
    result.cold = {
      mode: plan.expire.mode,
      ttlSeconds: plan.expire.mode === 'ttl' ? plan.expire.ttlSeconds : null,
      deleteEveryMs: plan.expire.mode === 'del' ? plan.expire.everyMs : null,
      deletes: expiry.deletes,
      expiries: expiry.expiries,
      queriesPerExpiry: perExpiry(firestore?.queries),
      documentsReadPerExpiry: perExpiry(firestore?.documentsRead),
      writesPerExpiry: perExpiry(firestore?.writes)
    }
  }
  log(`${plan.name}: ${Math.round(result.reqPerSec)} req/s, p99 ${result.latencyMs.p99.toFixed(1)} ms, ${result.errors} errors, ${result.non2xx} non-2xx`)
  return result
}

// ---------------------------------------------------------------------------------------------

/**
 * HIT and LIMIT loaded at once, in rounds: each server gets half the connections, both share the server
 * core, and each one's CPU per response is read over the same window. Whatever the machine does in
 * that window weighs on both alike: here the kernel's share of a response (the same read and writev on
 * loopback) was seen at about 2 µs in some windows and 5 µs in others, for either server, which turns
 * one after the other cannot tell from the servers' own difference.
 */
async function runSideBySide (ctx: Context, hit: Server, limit: Server, userAgent: string, rounds: number): Promise<SideBySide['rounds']> {
  const all: SideBySide['rounds'] = []
  for (let round = 1; round <= rounds; round++) {
    log(`side by side, round ${round}: ${hit.name} and LIMIT at once, ${ctx.connections / 2} connections each, ${ctx.seconds} s`)
    const servers = [hit, limit]
    let before: Array<ReturnType<typeof cpuTimes>> = []
    let after: Array<ReturnType<typeof cpuTimes>> = []
    const loads = await runLoad<LoadResult[]>(ctx, { name: 'HIT', description: '', servers, userAgent, unique: false, separately: true }, async () => {
      before = servers.map((s) => cpuTimes(s.tracked.pid))
      return async () => { after = servers.map((s) => cpuTimes(s.tracked.pid)) }
    })
    const [hitSide, limitSide] = servers.map((server, i): SideBySideServer => {
      const load = loads[i]!
      if (load.requests === 0) throw new BenchError(`side by side: ${server.name} completed no request in ${ctx.seconds} s`)
      const per = (k: 'user' | 'system'): number => (after[i]![k] - before[i]![k]) * 1e6 / load.requests
      return {
        requests: load.requests,
        reqPerSec: load.requests / load.durationSeconds,
        userMicrosPerResponse: per('user'),
        systemMicrosPerResponse: per('system'),
        errors: load.errors,
        non2xx: load.non2xx,
        hits: load.xCache.hit ?? 0
      }
    }) as [SideBySideServer, SideBySideServer]
    all.push({ hit: hitSide, limit: limitSide, cpuRatio: micros(limitSide) / micros(hitSide) })
  }
  return all
}

/** A server's CPU per response in a round: user and kernel. */
const micros = (s: SideBySideServer): number => s.userMicrosPerResponse + s.systemMicrosPerResponse

function sideBySide (name: string, description: string, rounds: SideBySide['rounds']): SideBySide {
  return {
    name,
    description,
    rounds,
    cpuRatio: median(rounds.map((r) => r.cpuRatio)),
    hitMicrosPerResponse: median(rounds.map((r) => micros(r.hit))),
    limitMicrosPerResponse: median(rounds.map((r) => micros(r.limit)))
  }
}

/** The repository's commit, and whether the server's sources differ from it (the build is of the working tree). */
function gitSource (): { commit: string, uncommittedChanges: boolean } | null {
  const git = (args: string[]): string | undefined => {
    const run = spawnSync('git', ['-C', root, ...args], { encoding: 'utf8', timeout: 5000 })
    return run.status === 0 ? run.stdout.trim() : undefined
  }
  const commit = git(['rev-parse', '--short', 'HEAD'])
  const status = git(['status', '--porcelain', '--', 'src', 'templates', 'package-lock.json'])
  return commit === undefined || status === undefined ? null : { commit, uncommittedChanges: status !== '' }
}

function headerBytes (headers: Record<string, string | string[] | undefined>): number {
  return Object.entries(headers).reduce((sum, [name, value]) =>
    sum + [value ?? []].flat().reduce((s, v) => s + name.length + 4 + Buffer.byteLength(v), 0), 0)
}

async function main (): Promise<void> {
  const { smoke, out: outOption } = parseOptions(process.argv.slice(2))
  const seconds = numberOption('BENCH_SECONDS', smoke ? 1 : 10, { min: 0.5, max: 600 })
  const warmupSeconds = numberOption('BENCH_WARMUP_SECONDS', smoke ? 0.5 : 2, { min: 0, max: 120 })
  // A smoke run checks the machinery: few connections, so even a slow NEW completes requests in its second.
  const connections = numberOption('BENCH_CONNECTIONS', smoke ? 10 : 100, { min: 2, max: 2000 })
  const coldExpiry = process.env.BENCH_COLD_EXPIRY === undefined || process.env.BENCH_COLD_EXPIRY === '' ? 'del' : process.env.BENCH_COLD_EXPIRY
  if (coldExpiry !== 'ttl' && coldExpiry !== 'del') throw new BenchError(`BENCH_COLD_EXPIRY=${JSON.stringify(coldExpiry)} is invalid: must be ttl or del`)
  const coldTtlSeconds = numberOption('BENCH_COLD_TTL', 1, { min: 1, max: 3600 })
  if (!Number.isInteger(coldTtlSeconds)) throw new BenchError('BENCH_COLD_TTL must be a whole number of seconds')
  const coldDeleteEveryMs = numberOption('BENCH_COLD_DELETE_MS', smoke ? 250 : 1000, { min: 50, max: 60_000 })
  const librarySeconds = numberOption('BENCH_LIBRARY_SECONDS', smoke ? 0.2 : 6, { min: 0.1, max: 600 })
  const turns = numberOption('BENCH_TURNS', smoke ? 1 : 5, { min: 1, max: 20 })
  const turnSeconds = numberOption('BENCH_TURN_SECONDS', smoke ? 1 : 5, { min: 0.5, max: 600 })
  const coldStartRounds = numberOption('BENCH_COLDSTART_ROUNDS', smoke ? 1 : 7, { min: 1, max: 50 })
  if (!Number.isInteger(turns) || !Number.isInteger(coldStartRounds)) throw new BenchError('BENCH_TURNS and BENCH_COLDSTART_ROUNDS must be whole numbers')
  if (process.env.BENCH_SERVER !== undefined && process.env.BENCH_SERVER !== '') serverJs = resolve(process.env.BENCH_SERVER)
  const sharedEmulator = process.env.BENCH_FIRESTORE_EMULATOR === '' ? undefined : process.env.BENCH_FIRESTORE_EMULATOR
  if (sharedEmulator !== undefined && !/^127\.0\.0\.1:\d{1,5}$/.test(sharedEmulator)) {
    throw new BenchError(`BENCH_FIRESTORE_EMULATOR=${JSON.stringify(sharedEmulator)} is invalid: must be 127.0.0.1:PORT`)
  }
  const out = outOption === undefined ? (smoke ? await mkdtemp(join(tmpdir(), 'visitme-bench-')) : defaultOut) : resolve(outOption)
  if (smoke && resolve(out) === resolve(defaultOut)) throw new BenchError('a smoke run never writes bench/results/: choose another --out')

  // Bounded in time as a whole, whatever hangs.
  const budgetSeconds = 2 * (warmupSeconds + seconds + 60) + 4 * turns * (warmupSeconds + turnSeconds + 30) + 35 + 3 * (coldStartRounds + 1) * 35 + 180
  setTimeout(() => { finish(1, `the benchmark took longer than ${budgetSeconds} s: stopped`).catch(() => process.exit(1)) }, budgetSeconds * 1000).unref()

  if (!existsSync(serverJs)) throw new BenchError(`${serverJs} does not exist: build first (npm run build; npm run bench does)`)
  const cores = allowedCpus().length || availableParallelism()
  const loadAverageAtStart = loadavg()
  const pinning = choosePinning()
  pinSelf(pinning.loadCore)
  log(pinning.note)

  const [loadJs, limitJs] = await Promise.all([transpile('load'), transpile('limit-server')])
  const work = await mkdtemp(join(tmpdir(), 'visitme-bench-work-'))
  cleanup.add('the work directory', async () => { await rm(work, { recursive: true, force: true }) })

  const [{ port: redisPort, client: redis }, emulatorHost] = await Promise.all([
    startRedis({ cleanup, started, log, core: pinning.loadCore }),
    sharedEmulator ?? startEmulator({ cleanup, started, log, core: pinning.loadCore })
  ])
  if (sharedEmulator !== undefined) log(`Firestore emulator at ${sharedEmulator} (shared: not started, not stopped here)`)

  const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`
  const collection = `bench_${runId.replace(/-/g, '_')}`
  const namespace = `bench-${runId}`
  const recentVisitsKey = recentVisitsStoreKey(namespace, collection)
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    // The node flags the image runs the server with, from the Dockerfile itself.
    NODE_OPTIONS: await imageNodeOptions(root),
    HOST: '127.0.0.1',
    REDISHOST: '127.0.0.1',
    REDISPORT: String(redisPort),
    FIRESTORE_EMULATOR_HOST: emulatorHost,
    GOOGLE_CLOUD_PROJECT: 'demo-bench',
    METADATA_SERVER_DETECTION: 'none',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_WRITES: '0',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    VISITS_COLLECTION: collection,
    CACHE_NAMESPACE: namespace
  }
  // What runs on the load core besides the load generator: redis-server and (when it is ours) the emulator.
  const backendPids = started.filter((s) => s.what.startsWith('redis-server') || s.what.startsWith('Firestore emulator')).map((s) => s.pid)
  const ctx: Context = { loadJs, pinning, redis, connections, warmupSeconds, seconds, backendPids }
  const coldStarts: ColdStart[] = []
  const scenarios: ScenarioResult[] = []
  const notes: string[] = []

  // HIT's server first: its page is what LIMIT serves. The page lists 10 visits, as a popular page
  // does: nine other visitors first, then the HIT visitor, who is then the newest and stores nothing.
  const hitAgent = 'visitme-bench HIT'
  const seedAgents = Array.from({ length: 9 }, (_, i) => `visitme-bench visitor ${i + 1}`)
  const hitServer = await startRealServer('HIT', pinning.serverCore, env, seedAgents[0]!)
  coldStarts.push({ server: 'HIT', ms: hitServer.coldStartMs })
  for (const agent of [...seedAgents.slice(1), hitAgent]) {
    const seeded = await httpRequest(hitServer.url, { headers: { 'user-agent': agent } })
    if (seeded.status !== 200) throw new BenchError(`seeding the list: GET / for ${agent} answered ${seeded.status}`)
  }
  const page = await httpRequest(hitServer.url, { headers: { 'user-agent': hitAgent } })
  const contentType = String(page.headers['content-type'] ?? '')
  if (page.status !== 200 || contentType === '') throw new BenchError(`GET / for the HIT visitor answered ${page.status} (${contentType || 'no content type'})`)
  if (page.headers['x-cache'] !== 'hit') notes.push(`The HIT visitor's second request was answered with x-cache: ${String(page.headers['x-cache'])}, not hit.`)

  // The list's key, as src/visits/cache-keys.ts and the cache library's keys.ts build it: checked, not assumed.
  const keys = await redis.keys('*')
  if (!keys.includes(recentVisitsKey)) {
    throw new BenchError(`the cached list is not under the expected key ${recentVisitsKey}; keys in Redis: ${keys.join(', ')}`)
  }
  log(`the cached list is at ${recentVisitsKey}`)

  const limitServer = await startLimitServer(limitJs, pinning.serverCore, { body: page.body, headers: pageHeaders(page.headers) }, work)
  const limitAnswer = await httpRequest(limitServer.url)
  // HIT and LIMIT in turns (HIT, LIMIT, HIT, LIMIT, …), both processes up all along: the machine's
  // drift weighs on both alike, and each row of the table is the turn of median server CPU per response.
  const turnCtx: Context = { ...ctx, seconds: turnSeconds }
  const hitTurns: ScenarioResult[] = []
  const limitTurns: ScenarioResult[] = []
  for (let turn = 1; turn <= turns; turn++) {
    hitTurns.push(await runScenario(turnCtx, {
      name: 'HIT',
      description: 'GET / by the same visitor (user agent, address) again and again: every response after the first should be x-cache: hit.',
      servers: [hitServer],
      userAgent: hitAgent,
      unique: false
    }))
    limitTurns.push(await runScenario(turnCtx, {
      name: 'LIMIT',
      description: 'A bare Fastify route answering GET / with the HIT page\'s bytes from memory (same node, same core): the ceiling for a cached page.',
      servers: [limitServer],
      userAgent: hitAgent,
      unique: false
    }))
  }
  // The headline: HIT and LIMIT loaded at once (runSideBySide). Then the same with a HIT server that has no
  // Firestore client in its process, serving the same list from Redis: what the server's own code costs.
  const withEmulator = sideBySide('Redis + emulator', 'the HIT server above: the list in Redis, visits in the Firestore emulator, ' +
    'its Firestore client loaded (as in any instance that records visits).', await runSideBySide(turnCtx, hitServer, limitServer, hitAgent, turns))
  await hitServer.stop()
  const redisOnlyEnv = Object.fromEntries(Object.entries(env).filter(([name]) => name !== 'FIRESTORE_EMULATOR_HOST' && name !== 'GOOGLE_CLOUD_PROJECT'))
  const redisOnlyServer = await startRealServer('HIT, Redis only', pinning.serverCore, redisOnlyEnv, hitAgent)
  const redisOnlyPage = await httpRequest(redisOnlyServer.url, { headers: { 'user-agent': hitAgent } })
  if (!redisOnlyPage.body.equals(page.body) || redisOnlyPage.headers['x-cache'] !== 'hit') {
    notes.unshift(`⚠ The Redis-only HIT server answered x-cache: ${String(redisOnlyPage.headers['x-cache'])} with ${redisOnlyPage.body.length} bytes, ` +
      `not the HIT page (${page.body.length} bytes): its side-by-side rounds compare different pages.`)
  }
  const withoutFirestore = sideBySide('Redis only', 'a HIT server with no Firestore configured, started on the same Redis and serving the same list ' +
    '(the same bytes) from it: the server\'s own cost, without a Firestore client (gRPC) in its process.', await runSideBySide(turnCtx, redisOnlyServer, limitServer, hitAgent, turns))
  await redisOnlyServer.stop()
  await limitServer.stop()
  const medianTurn = (all: ScenarioResult[]): ScenarioResult => {
    const sorted = [...all].sort((a, b) => serverMicrosPerResponse(a) - serverMicrosPerResponse(b))
    return { ...sorted[Math.floor((sorted.length - 1) / 2)]!, turns: all.map((s) => ({ reqPerSec: s.reqPerSec, serverMicrosPerResponse: serverMicrosPerResponse(s), p99Ms: s.latencyMs.p99 })) }
  }
  scenarios.push(medianTurn(limitTurns), medianTurn(hitTurns))
  const hitMicros = median(hitTurns.map(serverMicrosPerResponse))
  const limitMicros = median(limitTurns.map(serverMicrosPerResponse))
  const hitPath: BenchResults['hitPath'] = {
    turns,
    secondsPerTurn: turnSeconds,
    pageBytes: page.body.length,
    visitsListed: (page.body.toString().match(/<li\b/g) ?? []).length,
    hitMicrosPerResponse: withEmulator.hitMicrosPerResponse,
    limitMicrosPerResponse: withEmulator.limitMicrosPerResponse,
    cpuRatio: withEmulator.cpuRatio,
    turnsCpuRatio: limitMicros / hitMicros,
    reqPerSecRatio: median(hitTurns.map((s) => s.reqPerSec)) / median(limitTurns.map((s) => s.reqPerSec)),
    sideBySide: [withEmulator, withoutFirestore]
  }
  log(`HIT and LIMIT in ${turns} turns: server µs per response ${hitMicros.toFixed(1)} (HIT) and ${limitMicros.toFixed(1)} (LIMIT): LIMIT / HIT = ${hitPath.turnsCpuRatio.toFixed(2)}`)
  for (const side of hitPath.sideBySide) log(`side by side (${side.name}): LIMIT / HIT = ${side.cpuRatio.toFixed(3)} (${side.rounds.map((r) => r.cpuRatio.toFixed(3)).join(', ')})`)

  // HIT again with OpenTelemetry on: a span per request, exported (http/protobuf, the default) to a sink of
  // the harness that only reads and acknowledges, on the load core; the metrics at their default interval.
  const sink = await startOtlpSink()
  const otelServer = await startRealServer('HIT+OTEL', pinning.serverCore, { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: sink.url }, hitAgent)
  scenarios.push(await runScenario(ctx, {
    name: 'HIT+OTEL',
    description: 'HIT with OpenTelemetry on (OTEL_EXPORTER_OTLP_ENDPOINT set to a local sink): what tracing and metrics cost a cached page.',
    servers: [otelServer],
    userAgent: hitAgent,
    unique: false
  }))
  await otelServer.stop()
  await sink.stop()
  notes.push(`HIT+OTEL: the server sent ${sink.exports()} OTLP requests (${(sink.bytes() / 1e6).toFixed(1)} MB) to the harness's sink, ` +
    'which reads and acknowledges them on the load core (the SDK\'s defaults: spans in batches of up to 512, metrics every 60 s). ' +
    `Its cold start, loading the SDK, was ${Math.round(otelServer.coldStartMs)} ms (not in the cold-start median, which compares the default set-up).`)

  const newServer = await startRealServer('NEW', pinning.serverCore, env, 'visitme-bench NEW first')
  coldStarts.push({ server: 'NEW', ms: newServer.coldStartMs })
  scenarios.push(await runScenario(ctx, {
    name: 'NEW',
    description: 'A different visitor (user agent) on every request: a visit stored in the Firestore emulator each time.',
    servers: [newServer],
    userAgent: 'visitme-bench NEW',
    unique: true
  }))
  await newServer.stop()

  const coldAgent = 'visitme-bench COLD'
  // TTL mode (not the default): the COLD servers cache the list for BENCH_COLD_TTL seconds; with App Engine's
  // rule the visitor then counts again after each TTL, and a stored visit may keep the list alive.
  const coldEnv = coldExpiry === 'ttl' ? { ...env, VISITS_CACHE_TTL: String(coldTtlSeconds) } : env
  const coldA = await startRealServer('COLD-a', pinning.serverCore, coldEnv, coldAgent)
  coldStarts.push({ server: 'COLD-a', ms: coldA.coldStartMs })
  const coldB = await startRealServer('COLD-b', pinning.serverCore, coldEnv, coldAgent)
  coldStarts.push({ server: 'COLD-b', ms: coldB.coldStartMs })
  scenarios.push(await runScenario(ctx, {
    name: 'COLD',
    description: `Two server processes sharing Redis and the emulator, ${connections} connections split over both, one visitor; ` +
      (coldExpiry === 'ttl'
        ? `the list expires every ${coldTtlSeconds} s (VISITS_CACHE_TTL=${coldTtlSeconds} on these two servers).`
        : `the harness deletes the cached list every ${coldDeleteEveryMs} ms (DEL, then the app's change announcement).`),
    servers: [coldA, coldB],
    userAgent: coldAgent,
    unique: false,
    expire: coldExpiry === 'ttl'
      ? { key: recentVisitsKey, mode: 'ttl', ttlSeconds: coldTtlSeconds }
      : { key: recentVisitsKey, mode: 'del', everyMs: coldDeleteEveryMs }
  }))
  // COLDSTART's visitor becomes the list's newest: a new process's first page is then the list in Redis.
  const coldStartAgent = 'visitme-bench COLDSTART'
  const seeded = await httpRequest(coldA.url, { headers: { 'user-agent': coldStartAgent } })
  if (seeded.status !== 200) throw new BenchError(`GET / for ${coldStartAgent} answered ${seeded.status}`)
  await coldB.stop()
  await coldA.stop()

  // COLDSTART: a bare Fastify process serving the HIT page, and the server embedded and with Redis + the
  // emulator, started in turns (each command has run before: LIMIT, the scenarios' servers). Its visitor is
  // the list's newest: the first page of a process with Redis is the list in Redis, with no Firestore call.
  const bareEnv = { PATH: env.PATH!, NODE_OPTIONS: env.NODE_OPTIONS!, HOST: '127.0.0.1', BENCH_BODY_FILE: join(work, 'hit-page.html'), BENCH_HEADERS: JSON.stringify(pageHeaders(page.headers)) }
  const { REDISHOST: _host, REDISPORT: _port, FIRESTORE_EMULATOR_HOST: _emulator, GOOGLE_CLOUD_PROJECT: _project, ...embeddedEnv } = env
  const variants: ColdStartVariant[] = [
    { name: 'bare Fastify', command: process.execPath, args: [limitJs], env: bareEnv, real: false },
    { name: 'embedded', command: process.execPath, args: [serverJs], env: embeddedEnv, real: true },
    { name: 'Redis + emulator', command: process.execPath, args: [serverJs], env, real: true }
  ]
  const coldStartOptions = {
    core: pinning.serverCore,
    userAgent: coldStartAgent,
    nodeOptions: env.NODE_OPTIONS!,
    freePort,
    track: (what: string, tracked: Tracked, port: number) => {
      started.push({ what, pid: tracked.pid, port })
      return cleanup.add(what, async () => { await stopProcess(tracked) })
    },
    log
  }
  // One start not counted: the seeding visit may still be settling in the list when the first process reads it.
  await measureColdStarts({ ...coldStartOptions, variants: [variants[2]!], rounds: 1, log: () => {} })
  log(`COLDSTART: ${coldStartRounds} rounds of ${variants.map((v) => v.name).join(', ')}`)
  const coldStartResults = await measureColdStarts({ ...coldStartOptions, variants, rounds: coldStartRounds })
  const withRedis = coldStartResults.series.find((s) => s.name === 'Redis + emulator')!
  if (withRedis.databaseCalls!.some((n) => n !== 0)) {
    notes.unshift(`⚠ COLDSTART: a process with the list in Redis made Firestore calls for its first page (${withRedis.databaseCalls!.join(', ')}).`)
  }

  // The library against bare ioredis: a process of its own on the server's core (idle now: every server has
  // stopped), on the run's redis-server.
  log(`library: the cache library against bare ioredis, ${librarySeconds} s per side for each operation`)
  const library = await benchLibraryApart({ core: pinning.serverCore, root, port: redisPort, seconds: librarySeconds, slices: smoke ? 2 : 10 })
  for (const o of library.operations) log(`library: ${o.name}: ${o.ratio.toFixed(2)} × bare (${Math.round(o.library.opsPerSec)} / ${Math.round(o.bare.opsPerSec)} ops/s)`)

  const limit = scenarios.find((s) => s.name === 'LIMIT')!
  const limitReqPerSec = median(limitTurns.map((s) => s.reqPerSec))
  for (const s of scenarios) s.ratioToLimit = s.name === 'HIT' ? hitPath.reqPerSecRatio : s.reqPerSec / limitReqPerSec
  // While LIMIT ran, the only Redis client was the idle HIT server: its commands are an idle process's
  // background (e.g. a pub/sub heartbeat). They stay in the other scenarios' counts; their weight is estimated.
  const idlePerSecond = (limit.redis?.commands ?? 0) / limit.durationSeconds
  for (const s of scenarios) {
    if (s.redis !== null && s.name !== 'LIMIT') s.redis.idleBackgroundPerRequest = idlePerSecond * s.servers / s.reqPerSec
  }

  const cold = scenarios.find((s) => s.name === 'COLD')!
  if (cold.errors > 0 || cold.non2xx > 0) notes.unshift(`⚠ COLD: ${cold.errors} errors and ${cold.non2xx} non-2xx responses (status codes ${JSON.stringify(cold.statusCodes)}): requests failed while the list expired.`)
  for (const s of scenarios.filter((s) => s.name !== 'COLD' && (s.errors > 0 || s.non2xx > 0))) {
    notes.unshift(`⚠ ${s.name}: ${s.errors} errors and ${s.non2xx} non-2xx responses (status codes ${JSON.stringify(s.statusCodes)}).`)
  }
  const disturbed = scenarios.filter((s) => (s.serverCore?.otherPercent ?? 0) >= 10)
  if (disturbed.length > 0) {
    notes.unshift(`⚠ Other processes used ≥ 10 % of the server's core during ${disturbed.map((s) => `${s.name} (${Math.round(s.serverCore!.otherPercent)} %)`).join(', ')}: ` +
      'the machine was not quiet, those figures are lower than the server can do; run again on an idle machine.')
  }
  const saturated = scenarios.filter((s) => s.loaderCpuPercent >= 85 || (s.loadCore?.busyPercent ?? 0) >= 90)
  if (saturated.length > 0) {
    const pct = (n: number | undefined): string => `${Math.round(n ?? Number.NaN)} %`
    notes.unshift(`⚠ The load generator's core was (nearly) full in ${saturated.map((s) => `${s.name} (${pct(s.loadCore?.busyPercent)} busy: loader ` +
      `${pct(s.loaderCpuPercent)}, redis-server + emulator ${pct(s.loadCore?.backendsPercent)}, interrupts ${pct(s.loadCore?.irqPercent)}, ` +
      `other processes ${pct(s.loadCore?.otherPercent)})`).join(', ')}: ` +
      'those req/s may be bound by that core (the load generator, or the emulator it hosts), not by the server' +
      (saturated.some((s) => s.name === 'LIMIT') ? ' (LIMIT then understates the ceiling, and the ratios to it are upper bounds).' : '.'))
  }
  notes.push(
    pinning.note[0]!.toUpperCase() + pinning.note.slice(1) + '.',
    `Every server (LIMIT too) runs with the image's NODE_OPTIONS (${env.NODE_OPTIONS === '' ? 'none' : env.NODE_OPTIONS}, from the Dockerfile).`,
    'Real servers: `node dist/server.js` with LOG_LEVEL=warn and RATE_LIMIT_WRITES=0 (no scenario is about the write limit: ' +
      'every request comes from 127.0.0.1), a Redis and an emulator of this run, a collection and cache namespace of this run.',
    'req/s = responses completed in the measured window / its length; p50/p99 = the load generator\'s latency of every response ' +
      '(closed loop: each connection sends its next request when the last is answered).',
    'Firestore per request = the delta of `instance.visits` (queries, documentsRead, writes) of each server\'s `GET /stats` ' +
      '(JSON) over the window, summed over the scenario\'s servers, divided by the responses; /stats is read outside the window.',
    'Redis commands per request = the delta of `total_commands_processed` (INFO) of the run\'s own redis-server over the window ' +
      '(commands run inside Lua scripts count, as Redis counts them), minus the harness\'s own commands (its INFO snapshot, ' +
      'COLD\'s DELs and PUBLISHes) and minus HINCRBY calls, which are the app\'s cache-stats flush (one batch at most every 2 s per process, ' +
      'not per request; reported as `redis.background` in latest.json); divided by the responses. Per-command counts are in latest.json. ' +
      `Other background commands stay counted: an idle server process sent ${idlePerSecond.toFixed(1)} commands/s while LIMIT ran ` +
      `(${Object.entries(limit.redis?.byCommand ?? {}).map(([name, n]) => `${name} ${n}`).join(', ') || 'none'}), i.e. at most ` +
      `${Math.max(...scenarios.map((s) => s.redis?.idleBackgroundPerRequest ?? 0)).toFixed(4)} per request here (\`redis.idleBackgroundPerRequest\`).`,
    coldExpiry === 'ttl'
      ? 'COLD (ttl mode): expiries are `expired` keyspace notifications of the list\'s key (notify-keyspace-events=Kx during COLD only), ' +
        `with VISITS_CACHE_TTL=${coldTtlSeconds} on the COLD servers; under App Engine's rule the visitor counts again after each TTL, ` +
        'so a visit is stored and the list may be kept alive instead of expiring.'
      : `COLD: every ${coldDeleteEveryMs} ms the harness deletes the list's key (DEL) and publishes \`changed\` on the key's channel, ` +
        'as the app does when it deletes the list itself (Cache.announce), so processes that keep a copy of the list drop it; ' +
        'an expiry is a DEL that found the key (one not rebuilt since the last DEL is not counted).',
    'RSS = the largest VmRSS of /proc/<pid>/status sampled every 200 ms during the window, per server process; CPU = utime+stime ' +
      'of the process over the window (100 % = one core). COLD shows both processes (a / b). "Other CPU on server core" = the core\'s busy ' +
      'time (/proc/stat) minus interrupts (the loopback network, accounted to no process) minus the server processes\' CPU: work of other ' +
      'processes (unpinned ones may still run there) that competed with the server; latest.json splits both cores\' time (`serverCore`, `loadCore`).',
    `LIMIT answers with the ${page.body.length}-byte HIT page and the same response headers, in the same order ` +
      `(${headerBytes(limitAnswer.headers)} header bytes; the real page ${headerBytes(page.headers)}): the same bytes on the wire but the date.`,
    sharedEmulator === undefined
      ? 'redis-server and the Firestore emulator (Java, -Xmx512m) are local and share the load generator\'s core: NEW and COLD are bound by the emulator, not by Firestore\'s latency.'
      : `The Firestore emulator at ${sharedEmulator} is shared (not started or stopped here, not pinned): other work on it shows in NEW and COLD. redis-server is this run's own, so Redis counts are clean.`
  )
  if (smoke) notes.unshift('SMOKE run: about 1 s per scenario; it checks that the harness works, its figures mean nothing.')

  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(await readFile('/proc/cpuinfo', 'utf8').catch(() => ''))?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown'
  const autocannonVersion = (JSON.parse(await readFile(join(root, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version
  const redisVersion = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 'unknown'
  const results: BenchResults = {
    mode: smoke ? 'smoke' : 'full',
    date: new Date().toISOString(),
    machine: {
      cpuModel,
      cores,
      onlineCpus: cpus().length,
      nodeVersion: process.versions.node,
      platform: `${process.platform} ${process.arch}`,
      kernel: release(),
      memoryMB: Math.round(totalmem() / 2 ** 20),
      redisVersion,
      autocannonVersion,
      loadAverageAtStart
    },
    settings: {
      scenarioSeconds: seconds,
      turns,
      turnSeconds,
      coldStartRounds,
      warmupSeconds,
      connections,
      cold: coldExpiry === 'ttl'
        ? { expiry: 'ttl', ttlSeconds: coldTtlSeconds, deleteEveryMs: null }
        : { expiry: 'del', ttlSeconds: null, deleteEveryMs: coldDeleteEveryMs },
      server: serverJs,
      source: resolve(serverJs).startsWith(root) ? gitSource() : null,
      serverLabel: process.env.BENCH_SERVER_LABEL === '' ? undefined : process.env.BENCH_SERVER_LABEL,
      pinning: { serverCore: pinning.serverCore ?? null, loadCore: pinning.loadCore ?? null, note: pinning.note },
      rateLimitWrites: 0,
      visitsCollection: collection,
      cacheNamespace: namespace,
      recentVisitsKey,
      emulator: sharedEmulator === undefined ? `own, ${emulatorHost}` : `shared, ${sharedEmulator}`,
      redis: `own, 127.0.0.1:${redisPort}`
    },
    hitPath,
    coldStarts: coldStartResults,
    coldStart: {
      each: coldStarts,
      medianMs: median(coldStarts.map((c) => c.ms)),
      minMs: Math.min(...coldStarts.map((c) => c.ms)),
      maxMs: Math.max(...coldStarts.map((c) => c.ms))
    },
    scenarios,
    library,
    started,
    notes
  }

  // Everything stopped before the results are written: `started` is then all gone.
  const problems = await cleanup.stopAll()
  if (problems.length > 0) throw new BenchError(`could not stop: ${problems.join('; ')}`)

  const table = markdown(results)
  await mkdir(out, { recursive: true })
  await writeFile(join(out, 'latest.json'), JSON.stringify(results, null, 2) + '\n')
  await writeFile(join(out, 'latest.md'), table)
  await writeFile(join(out, 'latest.svg'), svgChart(results))
  process.stdout.write(table)
  process.stdout.write(`\nWritten: ${['json', 'md', 'svg'].map((ext) => join(out, `latest.${ext}`)).join(', ')}\n`)
}

try {
  await main()
  await finish(0)
} catch (err) {
  await finish(1, err instanceof BenchError ? err.message : (err as Error).stack ?? String(err))
}
