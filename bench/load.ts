/**
 * The load generator of the benchmark: autocannon's programmatic API in a process of its own,
 * which the harness (bench/run.ts) pins to the core the server does not use.
 *
 * It reads its settings from BENCH_LOAD (JSON), runs a warm-up, prints `READY`, waits for a
 * `GO` line on stdin (the harness takes its "before" counts in between), runs the measured
 * load and prints one `RESULT <json>` line. It exits when stdin closes, so it never outlives
 * the harness. Self-contained (no local imports): the harness transpiles it to one file.
 */
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import autocannon from 'autocannon'

export interface LoadSettings {
  /** One URL, or several: autocannon spreads the connections over them round robin. */
  urls: string[]
  connections: number
  warmupSeconds: number
  seconds: number
  userAgent: string
  /** Every request gets its own user agent (autocannon replaces `[<id>]` with a fresh id). */
  unique: boolean
  /**
   * Each URL gets an autocannon instance of its own with an equal share of the connections, all
   * running at once: RESULT is then an array, one result per URL in order (each cpuPercent is this
   * whole process's).
   */
  separately?: boolean
}

export interface LoadResult {
  /** Completed responses (any status). */
  requests: number
  /** Wall time of the measured run, as autocannon measured it. */
  durationSeconds: number
  /** Connection errors, timeouts included. */
  errors: number
  timeouts: number
  non2xx: number
  statusCodes: Record<string, number>
  /** Responses by their x-cache header ('none' when absent). */
  xCache: Record<string, number>
  /** Every response's latency (ms, sub-millisecond), not only 2xx as in autocannon's histogram. */
  latencyMs: { p50: number, p90: number, p99: number, max: number, mean: number }
  /** autocannon's own 2xx latency histogram (whole milliseconds), for reference. */
  autocannonLatencyMs: { p50: number, p99: number }
  /** CPU time of this process over the measured run, as a share of one core. */
  cpuPercent: number
}

const settings = JSON.parse(process.env.BENCH_LOAD ?? 'null') as LoadSettings | null
if (settings === null) throw new Error('BENCH_LOAD is not set: this process is started by bench/run.ts')

// The harness is gone: stop at once.
process.stdin.on('end', () => process.exit(2))
const lines = createInterface({ input: process.stdin })

function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]!
}

/** raw header list [name, value, name, value, …] → the x-cache value, lower case. */
function xCacheOf (info: unknown): string {
  const raw = (info as { headers?: unknown }).headers
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (String(raw[i]).toLowerCase() === 'x-cache') return String(raw[i + 1]).toLowerCase()
    }
  }
  return 'none'
}

async function load (seconds: number, { urls, connections, userAgent, unique }: LoadSettings): Promise<LoadResult> {
  const xCache: Record<string, number> = {}
  let latencies = new Float64Array(1 << 16)
  let count = 0
  const cpuBefore = process.cpuUsage()
  const startedAt = performance.now()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      // autocannon takes an array of URLs too (its types say string): connections alternate between them.
      url: (urls.length === 1 ? urls[0]! : urls) as string,
      connections,
      duration: seconds,
      timeout: 10,
      headers: { 'user-agent': unique ? `${userAgent} [<id>]` : userAgent },
      idReplacement: unique,
      setupClient: (client) => {
        // Read from the response head (without parsing the headers into an object), counted when the
        // response is complete, as autocannon counts responses (no pipelining: one response at a time).
        let value = 'none'
        client.on('headers', (info: unknown) => { value = xCacheOf(info) })
        client.on('response', () => { xCache[value] = (xCache[value] ?? 0) + 1 })
      }
    }, (err, res) => { if (err !== null && err !== undefined) reject(err); else resolve(res) })
    instance.on('response', (_client, _status, _bytes, ms) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[count++] = ms
    })
  })
  const cpu = process.cpuUsage(cpuBefore)
  const wallMs = performance.now() - startedAt
  const sorted = latencies.subarray(0, count).sort()
  let sum = 0
  for (const ms of sorted) sum += ms
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, { count }]) => [code, count ?? 0]))
  return {
    requests: Object.values(statusCodes).reduce((a, b) => a + b, 0),
    durationSeconds: result.duration,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    xCache,
    latencyMs: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: count === 0 ? 0 : sorted[count - 1]!,
      mean: count === 0 ? 0 : sum / count
    },
    autocannonLatencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
    cpuPercent: (cpu.user + cpu.system) / 1000 / wallMs * 100
  }
}

async function run (seconds: number, all: LoadSettings): Promise<LoadResult | LoadResult[]> {
  if (all.separately !== true) return await load(seconds, all)
  const connections = Math.max(1, Math.floor(all.connections / all.urls.length))
  return await Promise.all(all.urls.map(async (url) => await load(seconds, { ...all, urls: [url], connections })))
}

if (settings.warmupSeconds > 0) await run(settings.warmupSeconds, settings)
// Listening before READY is written: the GO line cannot arrive unheard.
const goLine = once(lines, 'line') as Promise<[string]>
process.stdout.write('READY\n')
const go = (await goLine)[0].trim()
if (go !== 'GO') throw new Error(`expected GO on stdin, got ${JSON.stringify(go)}`)
const result = await run(settings.seconds, settings)
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
lines.close()
process.exit(0)
