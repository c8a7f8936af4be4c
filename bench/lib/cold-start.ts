/**
 * COLDSTART: the time from spawning a server process to its first `200` on `GET /`, for a bare
 * Fastify process answering a fixed page and for the real server in both set-ups (embedded;
 * Redis + the Firestore emulator), started in turns (bare, embedded, Redis + emulator, bare, …)
 * so that a change in the machine's load weighs on all of them alike. The caller has run each
 * command before (the file system cache and V8's compile cache are warm) and, for a page from Redis,
 * made this visitor the list's newest.
 */
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { BenchError, cpuSeconds, httpRequest, spawnTracked, type Tracked } from './processes.js'

export interface ColdStartVariant {
  name: string
  /** The process to spawn: node and its arguments. */
  command: string
  args: string[]
  env: Record<string, string>
  /** The real server: its GET /stats tells what the first request asked of the database. */
  real: boolean
}

export interface ColdStartSeries {
  name: string
  /** Spawn → first 200 on GET /, one per counted round (ms). */
  ms: number[]
  medianMs: number
  /** The process's CPU time (user + system) when its first 200 arrived (ms): less moved by other work on the machine than the wall time. */
  cpuMs: number[]
  cpuMedianMs: number
  /** medianMs ÷ the bare process's. */
  ratioToBare: number
  /** The first 200's own request: sent once the process listened, answered by a process that served nothing before (ms). */
  firstRequestMs: number[]
  firstRequestMedianMs: number
  /** Database calls (queries + documents read + writes) the process had made after its first page, per round; null for the bare process. */
  databaseCalls: number[] | null
}

export interface ColdStartResults {
  rounds: number
  nodeOptions: string
  series: ColdStartSeries[]
}

export interface ColdStartOptions {
  variants: ColdStartVariant[]
  rounds: number
  core: number | undefined
  userAgent: string
  nodeOptions: string
  freePort: () => Promise<number>
  /** Registers the process with the harness's lifecycle; returns its stop. */
  track: (what: string, tracked: Tracked, port: number) => () => Promise<void>
  log: (message: string) => void
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

interface OneStart { ms: number, cpuMs: number, firstRequestMs: number, databaseCalls: number | null }

async function startOnce (variant: ColdStartVariant, options: ColdStartOptions): Promise<OneStart> {
  const port = await options.freePort()
  const url = `http://127.0.0.1:${port}/`
  const spawnedAt = performance.now()
  const tracked = spawnTracked(`COLDSTART ${variant.name}`, options.core, variant.command, variant.args, { env: { ...variant.env, PORT: String(port) } })
  const stop = options.track(`COLDSTART ${variant.name}`, tracked, port)
  try {
    // Polled every 2 ms: a refused connection costs the server nothing, and the first accepted one is answered.
    const deadline = spawnedAt + 30_000
    for (;;) {
      if (!tracked.running()) throw new BenchError(`COLDSTART ${variant.name}: the process exited before answering\n${tracked.output().trim()}`)
      if (performance.now() > deadline) throw new BenchError(`COLDSTART ${variant.name}: no 200 on GET / within 30 s`)
      const sentAt = performance.now()
      const answer = await httpRequest(url, { headers: { 'user-agent': options.userAgent }, timeoutMs: 10_000 }).catch(() => undefined)
      if (answer?.status === 200) {
        const now = performance.now()
        const cpuMs = cpuSeconds(tracked.pid) * 1000
        let databaseCalls: number | null = null
        if (variant.real) {
          const stats = await httpRequest(new URL('/stats', url).href, { headers: { accept: 'application/json' } })
          const usage = (JSON.parse(stats.body.toString()) as { instance?: { visits?: { queries?: number, documentsRead?: number, writes?: number } } }).instance?.visits
          if (usage === undefined) throw new BenchError(`COLDSTART ${variant.name}: GET /stats has no instance.visits`)
          databaseCalls = (usage.queries ?? 0) + (usage.documentsRead ?? 0) + (usage.writes ?? 0)
        }
        return { ms: now - spawnedAt, cpuMs, firstRequestMs: now - sentAt, databaseCalls }
      }
      if (answer !== undefined) throw new BenchError(`COLDSTART ${variant.name}: GET / answered ${answer.status}`)
      await sleep(2)
    }
  } finally {
    await stop()
  }
}

/** Every variant once per round, in turns. */
export async function measureColdStarts (options: ColdStartOptions): Promise<ColdStartResults> {
  const runs = new Map<string, OneStart[]>(options.variants.map((v) => [v.name, []]))
  for (let round = 1; round <= options.rounds; round++) {
    const seen: string[] = []
    for (const variant of options.variants) {
      const one = await startOnce(variant, options)
      runs.get(variant.name)!.push(one)
      seen.push(`${variant.name} ${Math.round(one.ms)} ms`)
    }
    options.log(`COLDSTART round ${round}: ${seen.join(', ')}`)
  }
  const bare = median(runs.get(options.variants[0]!.name)!.map((r) => r.ms))
  return {
    rounds: options.rounds,
    nodeOptions: options.nodeOptions,
    series: options.variants.map((v) => {
      const each = runs.get(v.name)!
      const ms = each.map((r) => r.ms)
      return {
        name: v.name,
        ms,
        medianMs: median(ms),
        ratioToBare: median(ms) / bare,
        cpuMs: each.map((r) => r.cpuMs),
        cpuMedianMs: median(each.map((r) => r.cpuMs)),
        firstRequestMs: each.map((r) => r.firstRequestMs),
        firstRequestMedianMs: median(each.map((r) => r.firstRequestMs)),
        databaseCalls: v.real ? each.map((r) => r.databaseCalls ?? Number.NaN) : null
      }
    })
  }
}
