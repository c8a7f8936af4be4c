/**
 * The cache library against bare ioredis, in one process, on one Redis: what the library's API costs
 * a caller per operation, beyond the round trip both pay. Each operation is measured in alternating
 * slices (bare, library, bare, library...), so that a drift of the machine weighs on both alike.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import type { Cache } from '@visitme/memcache'
import { pinned } from './processes.js'

/** The package as built (what ships), not the sources a TypeScript loader would transform on the way. */
type Library = typeof import('@visitme/memcache')

export interface Measure {
  ops: number
  opsPerSec: number
  /** This process's CPU (user + system) per operation, in microseconds: the client's cost. */
  cpuMicrosPerOp: number
}

export interface LibraryOperation {
  name: string
  /** What bare ioredis does for the same result. */
  bareWork: string
  library: Measure
  bare: Measure
  /**
   * library ops/s ÷ bare ops/s: the median over the pairs of slices (each pair run back to back),
   * so that a slice the machine disturbed weighs on one pair, not on the total.
   */
  ratio: number
}

export interface LibraryResults {
  /** Operations in flight at once, per side. */
  concurrency: number
  secondsPerSide: number
  slices: number
  operations: LibraryOperation[]
}

interface Side {
  run: (i: number) => Promise<unknown>
  ops: number
  ms: number
  cpuMicros: number
  /** ops/s of each slice, in order. */
  rates: number[]
}

/** A small JSON object, as a page fragment or a session would be cached. */
const VALUE = { id: 42, name: 'visitor', at: '2026-12-02T10:00:00.000Z', tags: ['a', 'b', 'c'], score: 0.75 }

async function slice (side: Side, concurrency: number, ms: number): Promise<void> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  const deadline = start + ms
  let ops = 0
  await Promise.all(Array.from({ length: concurrency }, async (_unused, lane) => {
    while (performance.now() < deadline) {
      await side.run(lane * 1_000_000 + ops)
      ops++
    }
  }))
  const used = process.cpuUsage(cpu)
  side.ms += performance.now() - start
  side.cpuMicros += used.user + used.system
  side.ops += ops
  side.rates.push(ops / ((performance.now() - start) / 1000))
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function measure (side: Side): Measure {
  return { ops: side.ops, opsPerSec: side.ops / (side.ms / 1000), cpuMicrosPerOp: side.cpuMicros / side.ops }
}

/** How many operations benchLibrary() measures, each for `seconds` per side: the bound on its run time. */
const OPERATIONS = 5

interface LibraryOptions { root: string, port: number, seconds: number, concurrency?: number, slices?: number }

/**
 * benchLibrary() in a process of its own on `core`: a fresh heap and no timers of the harness (its
 * samplers, its servers' bookkeeping), as in the process of an application that uses the library.
 */
export async function benchLibraryApart ({ core, ...options }: LibraryOptions & { core: number | undefined }): Promise<LibraryResults> {
  const [command, args] = pinned(core, process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), JSON.stringify(options)])
  const timeout = (2 * options.seconds * OPERATIONS + 60) * 1000
  const { stdout } = await promisify(execFile)(command, args, { timeout, killSignal: 'SIGKILL', maxBuffer: 1 << 20 })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as LibraryResults
}

/**
 * Runs each operation for `seconds` per side, against the Redis at 127.0.0.1:port: the library as a
 * user gets it (createRedisClient's fail-fast client, RedisStore, createCache) and bare ioredis with
 * its defaults.
 */
export async function benchLibrary ({ root, port, seconds, concurrency = 32, slices = 10 }: LibraryOptions): Promise<LibraryResults> {
  const { clientReady, createCache, createRedisClient, RedisStore } = await import(pathToFileURL(join(root, 'packages', 'memcache', 'dist', 'index.js')).href) as Library
  const client = createRedisClient({ host: '127.0.0.1', port })
  // The same fail-fast settings: the comparison is of what the API adds, not of the client's settings.
  const bare = createRedisClient({ host: '127.0.0.1', port })
  // ioredis as it comes: what the fail-fast settings themselves cost.
  const defaults = new Redis({ host: '127.0.0.1', port })
  try {
    await Promise.all([clientReady(client, AbortSignal.timeout(5000)), clientReady(bare, AbortSignal.timeout(5000)), defaults.ping()])
    const cache: Cache = createCache({ store: new RedisStore(client), namespace: `bench-library-${process.pid}` })
    const bareKey = `bench-library-bare-${process.pid}`
    await cache.set('value', VALUE)
    await bare.set(bareKey, JSON.stringify(VALUE))
    const answer = async (n: number) => { await Promise.resolve(); return n % 100 }
    const memoized = cache.memoize(answer, { ttl: 3600, key: 'answer' })
    for (let n = 0; n < 100; n++) await memoized(n)

    const plans: Array<{ name: string, bareWork: string, library: (i: number) => Promise<unknown>, bare: (i: number) => Promise<unknown> }> = [
      {
        name: 'get (hit)',
        bareWork: 'GET + JSON.parse',
        library: async () => await cache.get('value'),
        bare: async () => JSON.parse((await bare.get(bareKey))!)
      },
      {
        name: 'set',
        bareWork: 'SET of JSON.stringify',
        library: async (i) => await cache.set(`set:${i % 1000}`, VALUE, { ttl: 60 }),
        bare: async (i) => await bare.set(`${bareKey}:set:${i % 1000}`, JSON.stringify(VALUE), 'EX', 60)
      },
      {
        name: 'incr',
        bareWork: 'INCRBY',
        library: async (i) => await cache.incr(`counter:${i % 100}`, { initialValue: 0 }),
        bare: async (i) => await bare.incrby(`${bareKey}:counter:${i % 100}`, 1)
      },
      {
        name: 'GET + JSON.parse on the fail-fast client',
        bareWork: 'the same on ioredis\'s defaults',
        library: async () => JSON.parse((await bare.get(bareKey))!),
        bare: async () => JSON.parse((await defaults.get(bareKey))!)
      },
      {
        name: 'memoized call (hit)',
        bareWork: 'GET + JSON.parse',
        library: async (i) => await memoized(i % 100),
        bare: async () => JSON.parse((await bare.get(bareKey))!)
      }
    ]

    if (plans.length !== OPERATIONS) throw new Error(`benchLibrary measures ${plans.length} operations; OPERATIONS says ${OPERATIONS}`)
    const operations: LibraryOperation[] = []
    const sliceMs = seconds * 1000 / slices
    for (const plan of plans) {
      const library: Side = { run: plan.library, ops: 0, ms: 0, cpuMicros: 0, rates: [] }
      const reference: Side = { run: plan.bare, ops: 0, ms: 0, cpuMicros: 0, rates: [] }
      // A short warm-up of both: the JIT and the connections, outside the figures.
      await slice({ ...library, rates: [] }, concurrency, Math.min(200, sliceMs))
      await slice({ ...reference, rates: [] }, concurrency, Math.min(200, sliceMs))
      for (let s = 0; s < slices; s++) {
        await slice(reference, concurrency, sliceMs)
        await slice(library, concurrency, sliceMs)
      }
      const [lib, ref] = [measure(library), measure(reference)]
      operations.push({ name: plan.name, bareWork: plan.bareWork, library: lib, bare: ref, ratio: median(library.rates.map((rate, i) => rate / reference.rates[i]!)) })
    }
    await cache.close()
    return { concurrency, secondsPerSide: seconds, slices, operations }
  } finally {
    client.disconnect()
    bare.disconnect()
    defaults.disconnect()
  }
}

export function libraryMarkdown (results: LibraryResults): string {
  const rows = results.operations.map((o) => [
    `**${o.name}**`,
    o.bareWork,
    Math.round(o.library.opsPerSec).toLocaleString('en-US'),
    Math.round(o.bare.opsPerSec).toLocaleString('en-US'),
    o.ratio.toFixed(2),
    o.library.cpuMicrosPerOp.toFixed(1),
    o.bare.cpuMicrosPerOp.toFixed(1)
  ])
  const header = ['Operation', 'bare ioredis does', 'library ops/s', 'bare ops/s', 'library ÷ bare', 'library client µs CPU/op', 'bare client µs CPU/op']
  return [
    '### The cache library against bare ioredis',
    '',
    [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n'),
    '',
    `One process, ${results.concurrency} operations in flight per side, ${results.secondsPerSide} s per side in ${results.slices} alternating slices, ` +
      'on the run\'s redis-server; ops/s and client CPU (the process\'s user + system time per operation) over all slices; ' +
      'library ÷ bare is the median of the slice pairs\' ratios.'
  ].join('\n')
}

// Run by benchLibraryApart(): the options as JSON in argv, the results as one line of JSON on stdout.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${JSON.stringify(await benchLibrary(JSON.parse(process.argv[2]!) as LibraryOptions))}\n`)
}
