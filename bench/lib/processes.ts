/**
 * What the harness starts and how it stops it: child processes tracked by pid, stopped in
 * reverse order on success, failure or a signal; CPU pinning with taskset; /proc readings.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'node:http'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

/** NODE_OPTIONS as the Dockerfile's ENV line sets it ('' without one), or BENCH_NODE_OPTIONS (e.g. for an older build's flags). */
export async function imageNodeOptions (root: string): Promise<string> {
  if (process.env.BENCH_NODE_OPTIONS !== undefined) return process.env.BENCH_NODE_OPTIONS
  const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8')
  return /^ENV NODE_OPTIONS=(.*)$/m.exec(dockerfile)?.[1]?.trim().replace(/^"(.*)"$/, '$1') ?? ''
}

export class BenchError extends Error {
  override name = 'BenchError'
}

/** Everything started, stopped last-started first; each stop is bounded in time. */
export class Cleanup {
  readonly #tasks: Array<{ name: string, stop: () => Promise<void> }> = []

  /** Registers a stop; the returned function runs it now (once) and forgets it. */
  add (name: string, stop: () => Promise<void>): () => Promise<void> {
    const task = { name, stop }
    this.#tasks.push(task)
    return async () => {
      const index = this.#tasks.indexOf(task)
      if (index === -1) return
      this.#tasks.splice(index, 1)
      await stop()
    }
  }

  /** Stops everything still registered; returns what could not be stopped. */
  async stopAll (): Promise<string[]> {
    const problems: string[] = []
    for (const task of this.#tasks.splice(0).reverse()) {
      try {
        await task.stop()
      } catch (err) {
        problems.push(`${task.name}: ${(err as Error).message}`)
      }
    }
    return problems
  }
}

export function installed (command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

/** CPUs this process may run on (its affinity mask, e.g. a container's cpuset). */
export function allowedCpus (): number[] {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('Cpus_allowed_list:'))
  const list = line?.split(':')[1]?.trim() ?? ''
  const cpus: number[] = []
  for (const part of list.split(',').filter((p) => p !== '')) {
    const [from, to] = part.split('-').map(Number)
    for (let cpu = from!; cpu <= (to ?? from!); cpu++) cpus.push(cpu)
  }
  return cpus
}

export interface Pinning {
  /** The core of the server process(es) under test; undefined: not pinned. */
  serverCore?: number
  /** The core of the load generator, the harness, Redis and the emulator. */
  loadCore?: number
  note: string
}

export function choosePinning (): Pinning {
  const cpus = allowedCpus()
  if (cpus.length < 2) {
    return { note: `${cpus.length} core available: nothing is pinned; the load generator shares the server's core, so req/s are a lower bound` }
  }
  if (!installed('taskset')) {
    return { note: 'taskset is not installed (Debian: util-linux): nothing is pinned; load generator and server compete for the cores' }
  }
  const [serverCore, loadCore] = cpus as [number, number]
  return {
    serverCore,
    loadCore,
    note: `server process(es) pinned to CPU ${serverCore}; load generator (autocannon), harness, redis-server and the Firestore emulator pinned to CPU ${loadCore}` +
      (cpus.length > 2 ? ` (${cpus.length - 2} more CPU(s) left idle)` : '')
  }
}

/** The command line that runs `command` on `core` (as is, when core is undefined). */
export function pinned (core: number | undefined, command: string, args: string[]): [string, string[]] {
  return core === undefined ? [command, args] : ['taskset', ['-c', String(core), command, ...args]]
}

/** Moves this process (every thread) to `core`, so the harness stays off the server's core. */
export function pinSelf (core: number | undefined): void {
  if (core !== undefined) execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' })
}

export interface Tracked {
  name: string
  child: ChildProcess
  pid: number
  /** The last 16 kB the process wrote (stdout and stderr), for error messages. */
  output: () => string
  exited: Promise<number | null>
  running: () => boolean
}

/**
 * taskset execs the command, so the pid is the command's own. Each child leads a process group of
 * its own: a Ctrl-C in the terminal reaches the harness only, which then stops them in order (the
 * emulator through its /shutdown endpoint) instead of every process dying at once.
 */
export function spawnTracked (name: string, core: number | undefined, command: string, args: string[], options: SpawnOptions): Tracked {
  const [cmd, argv] = pinned(core, command, args)
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options })
  if (child.pid === undefined) throw new BenchError(`could not start ${name} (${cmd})`)
  let tail = ''
  const keep = (chunk: Buffer): void => { tail = (tail + chunk.toString()).slice(-16_384) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('error', (err) => { tail += `\n${String(err)}` })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  return { name, child, pid: child.pid, output: () => tail, exited, running: () => child.exitCode === null && child.signalCode === null }
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export async function stopProcess (tracked: Tracked, graceMs = 10_000): Promise<void> {
  if (!tracked.running()) return
  tracked.child.kill('SIGTERM')
  const exited = await Promise.race([tracked.exited.then(() => true), sleep(graceMs).then(() => false)])
  if (exited) return
  tracked.child.kill('SIGKILL')
  const killed = await Promise.race([tracked.exited.then(() => true), sleep(5000).then(() => false)])
  if (!killed) throw new BenchError(`${tracked.name} (pid ${tracked.pid}) did not exit after SIGKILL`)
}

/** Every descendant of pid (children first, then theirs), from /proc. */
export function descendants (pid: number): number[] {
  const found: number[] = []
  let tasks: string[] = []
  try { tasks = readdirSync(`/proc/${pid}/task`) } catch { return found }
  for (const task of tasks) {
    let children = ''
    try { children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8') } catch { continue }
    for (const child of children.split(' ').filter((c) => c.trim() !== '').map(Number)) {
      found.push(child, ...descendants(child))
    }
  }
  return found
}

/** A process that exists and is not a zombie. */
export function alive (pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[0]
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

/** Resident set size in kB (VmRSS of /proc/<pid>/status), or undefined when the process is gone. */
export function rssKb (pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))
    return line === undefined ? undefined : Number(line.replace(/\D+/g, ''))
  } catch {
    return undefined
  }
}

let clockTicks: number | undefined
/** User plus system CPU time of the process, in seconds. */
export function cpuSeconds (pid: number): number {
  const { user, system } = cpuTimes(pid)
  return user + system
}

/** A process's CPU time so far (seconds, /proc/PID/stat), in user space and in the kernel on its behalf; NaN once it is gone. */
export function cpuTimes (pid: number): { user: number, system: number } {
  clockTicks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100
  try {
    // The fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
    return { user: Number(fields[11]) / clockTicks, system: Number(fields[12]) / clockTicks }
  } catch {
    return { user: Number.NaN, system: Number.NaN }
  }
}

/**
 * Time of one CPU so far (jiffies, /proc/stat): busy (all but idle and iowait), of which irq (hard and
 * soft interrupts: mostly the loopback network, accounted to no process), and total; undefined without it.
 */
export function coreTimes (core: number | undefined): { busy: number, irq: number, total: number } | undefined {
  if (core === undefined) return undefined
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${core} `))
    if (line === undefined) return undefined
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number) as number[]
    const total = user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal!
    return { busy: total - idle! - iowait!, irq: irq! + softirq!, total }
  } catch {
    return undefined
  }
}

/** Samples the largest RSS of each process until stopped. */
export function sampleRss (pids: number[], everyMs = 200): { stop: () => number[] } {
  const max = pids.map(() => 0)
  const sample = (): void => { pids.forEach((pid, i) => { max[i] = Math.max(max[i]!, rssKb(pid) ?? 0) }) }
  sample()
  const timer = setInterval(sample, everyMs)
  return { stop: () => { clearInterval(timer); sample(); return max } }
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** One request on a fresh connection (no keep-alive), bounded by timeoutMs. */
export async function httpRequest (url: string, { method = 'GET', headers = {}, timeoutMs = 10_000 }: { method?: string, headers?: Record<string, string>, timeoutMs?: number } = {}): Promise<HttpAnswer> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export async function portAnswers (port: number, host = '127.0.0.1'): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (answered: boolean): void => { socket.destroy(); resolve(answered) }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

/** Polls check every everyMs until it is true; fails after timeoutMs, or at once when `tracked` exits. */
export async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs: number, tracked?: Tracked, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (tracked !== undefined && !tracked.running()) {
      throw new BenchError(`${what}: ${tracked.name} exited (code ${tracked.child.exitCode ?? tracked.child.signalCode}) before it was ready.\n${tracked.output().trim()}`)
    }
    if (await check().catch(() => false)) return
    await sleep(everyMs)
  }
  throw new BenchError(`${what}: not ready within ${timeoutMs / 1000} s.${tracked === undefined ? '' : `\n${tracked.output().trim()}`}`)
}
