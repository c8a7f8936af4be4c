import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Firestore } from '@google-cloud/firestore'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { pino, type Logger } from 'pino'
import type { Test } from 'tap'
import { buildApp, type AppDependencies } from '../src/app.js'
import type { Config } from '../src/config.js'
import { createFirestore } from '../src/plugins/firestore.js'
import { createRedisClient } from '../src/cache/index.js'
import type { CallOptions, VisitsRepository } from '../src/visits/repository.js'
import type { StoredVisit, Visit } from '../src/visits/visit.js'

/** A unique, readable name: tests share one Redis and one emulator, never a key or a collection. */
export function uniqueName (prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

function fromTestCommand (name: string): string {
  const value = process.env[name]
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run the tests with \`npm test\`, which provides Redis and the Firestore emulator`)
  }
  return value
}

/** The Redis the test command provides (its own, or the one REDISHOST names). */
export function redisTarget (): { host: string, port: number } {
  return hostPort(fromTestCommand('TEST_REDIS'))
}

/** The Firestore emulator the test command provides. */
export function emulatorHost (): string {
  return fromTestCommand('TEST_FIRESTORE_EMULATOR')
}

export function testConfig (overrides: Partial<Config> = {}): Config {
  return {
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    cacheNamespace: uniqueName('app'),
    visits: { collection: uniqueName('visits'), limit: 10, cacheTtlSeconds: 3600, ipMode: 'truncated' },
    trustProxyHops: 0,
    // Off unless a test is about it: tests send many writes from 127.0.0.1.
    rateLimitWrites: 0,
    shutdownTimeoutMs: 8000,
    onCloudRun: false,
    service: { name: 'visitme' },
    ...overrides
  }
}

/** Builds the app for one test and closes it when the test ends. */
export async function buildTestApp (t: Test, config: Config, deps: AppDependencies = {}): Promise<FastifyInstance> {
  const app = await buildApp(config, deps)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

/** A Redis client with the service's own fail-fast settings, quit when the test ends. */
export function testRedis (t: Test, target = redisTarget(), commandTimeoutMs = 1000): Redis {
  const client = createRedisClient({ ...target, commandTimeoutMs, connectTimeoutMs: 1000 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return client
}

export async function redisReady (client: Redis): Promise<Redis> {
  if (client.status !== 'ready') await once(client, 'ready')
  return client
}

export async function testFirestore (t: Test, host = emulatorHost()): Promise<Firestore> {
  const db = await createFirestore({ databaseId: '(default)', emulatorHost: host })
  t.teardown(async () => { await db.terminate() })
  return db
}

/** A logger whose lines the test can read. */
export function capturingLogger (): { logger: Logger, lines: () => Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { logger: pino({ level: 'debug', messageKey: 'message' }, stream), lines: () => lines }
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(25)
  }
}

/** Whether a Redis answers PING on the port, over a bare socket. */
async function pings (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.setTimeout(500, () => { socket.destroy(); resolve(false) })
    socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
    socket.once('error', () => resolve(false))
  })
}

/** A redis-server of the test's own, on its own port, that the test may stop and start again. */
export class TestRedisServer {
  #child: ChildProcess | undefined
  private constructor (readonly port: number, readonly args: readonly string[]) {}

  /** `args` are further redis-server options, kept for restarts. */
  static async start (t: Test, args: readonly string[] = [], port?: number): Promise<TestRedisServer> {
    const server = new TestRedisServer(port ?? await freePort(), args)
    t.teardown(async () => {
      await server.stop()
      await rm(join(tmpdir(), `visitme-test-${server.port}.rdb`), { force: true })
    })
    await server.restart()
    return server
  }

  async restart (): Promise<void> {
    // A replica writes the snapshot it syncs from: into the temporary directory, never the working one.
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', tmpdir(), '--dbfilename', `visitme-test-${this.port}.rdb`, ...this.args], { stdio: 'ignore' })
    this.#child = child
    await waitFor(`redis-server on ${this.port}`, async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`)
      return await pings(this.port)
    })
  }

  /** Holds every client's commands for ms milliseconds, as a slow or failing-over Redis would. */
  async pause (ms: number): Promise<void> {
    const admin = new Redis({ host: '127.0.0.1', port: this.port })
    try {
      await admin.call('CLIENT', 'PAUSE', String(ms), 'ALL')
    } finally {
      admin.disconnect()
    }
  }

  /** Whether it answers PING right now. */
  async answers (): Promise<boolean> {
    return await pings(this.port)
  }

  async stop (): Promise<void> {
    const child = this.#child
    this.#child = undefined
    if (child === undefined || child.exitCode !== null) return
    child.kill('SIGKILL')
    await once(child, 'exit')
  }
}

/**
 * A Redis Cluster of primaries on free ports (no replicas), made with redis-cli as an
 * operator would, as Memorystore for Redis Cluster or Valkey cluster mode serves it.
 * A node restarted with restart() rejoins from its nodes.conf.
 */
export class TestRedisCluster {
  private constructor (readonly nodes: TestRedisServer[]) {}

  static async start (t: Test, primaries = 3): Promise<TestRedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'visitme-cluster-'))
    t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
    const nodes: TestRedisServer[] = []
    for (let i = 0; i < primaries; i++) {
      const port = await freePort()
      // The bus port is chosen too: port + 10000, Redis' default, may be taken or out of range.
      nodes.push(await TestRedisServer.start(t, [
        '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '1000', '--cluster-port', String(await freePort())
      ], port))
    }
    await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'])
    const cluster = new TestRedisCluster(nodes)
    await cluster.settled()
    return cluster
  }

  /** The address a client discovers the cluster from. */
  get endpoint (): { host: string, port: number } {
    return { host: '127.0.0.1', port: this.nodes[0]!.port }
  }

  /** Waits until every node reports the cluster ok. */
  async settled (timeoutMs = 10_000): Promise<void> {
    await waitFor('the cluster to report ok on every node', async () => {
      for (const node of this.nodes) {
        const admin = new Redis({ host: '127.0.0.1', port: node.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
        admin.on('error', () => {})
        try {
          await admin.connect()
          if (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false
        } catch {
          return false
        } finally {
          admin.disconnect()
        }
      }
      return true
    }, timeoutMs)
  }
}

/** Milliseconds one call takes. */
export async function timed<T> (call: () => Promise<T>): Promise<{ value: T, ms: number }> {
  const start = performance.now()
  const value = await call()
  return { value, ms: performance.now() - start }
}

/**
 * What a TcpProxy does to traffic:
 * - forward: passes it both ways;
 * - slow: passes it both ways, each chunk `delayMs` late;
 * - drop-answers: passes requests on and drops every answer, so a write can land while its
 *   caller never hears of it;
 * - blackhole: accepts connections and drops everything, holding them open;
 * - reset: refuses new connections with a reset.
 */
export type ProxyMode = 'forward' | 'slow' | 'drop-answers' | 'blackhole' | 'reset'

/** A TCP proxy on 127.0.0.1 in front of a backend, for faults that leave the backend's data alone. */
export class TcpProxy {
  mode: ProxyMode = 'forward'
  /** How late `slow` passes each chunk. */
  delayMs = 200
  readonly #sockets = new Set<Socket>()

  private constructor (readonly server: Server, readonly target: { host: string, port: number }) {
    server.on('connection', (client) => this.#accept(client))
  }

  static async start (t: Test, target: { host: string, port: number }): Promise<TcpProxy> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const proxy = new TcpProxy(server, target)
    t.teardown(async () => { await proxy.close() })
    return proxy
  }

  get address (): string {
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`
  }

  /** Switches mode and cuts the connections already open, as a network fault would. */
  switch (mode: ProxyMode): void {
    this.mode = mode
    this.cut()
  }

  /**
   * Changes mode for the connections already open too. Leaving a mode that dropped or delayed
   * bytes cuts them, since their streams would not be whole.
   */
  set (mode: ProxyMode): void {
    const whole = this.mode === 'forward' || this.mode === 'reset'
    this.mode = mode
    if (!whole || mode === 'reset') this.cut()
  }

  cut (): void {
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }

  async close (): Promise<void> {
    this.switch('reset')
    await new Promise((resolve) => this.server.close(resolve))
  }

  #track (socket: Socket): void {
    this.#sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => this.#sockets.delete(socket))
  }

  #accept (client: Socket): void {
    this.#track(client)
    if (this.mode === 'reset') {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(this.target.port, this.target.host)
    this.#track(upstream)
    client.on('data', (chunk: Buffer) => { this.#pass(chunk, upstream, 'request') })
    upstream.on('data', (chunk: Buffer) => { this.#pass(chunk, client, 'answer') })
    upstream.once('close', () => client.destroy())
    client.once('close', () => upstream.destroy())
  }

  #pass (chunk: Buffer, to: Socket, direction: 'request' | 'answer'): void {
    if (this.mode === 'blackhole' || (this.mode === 'drop-answers' && direction === 'answer')) return
    // Timers of one delay fire in the order they were set: the stream stays in order.
    if (this.mode === 'slow') setTimeout(() => { if (!to.destroyed) to.write(chunk) }, this.delayMs)
    else if (!to.destroyed) to.write(chunk)
  }
}

export function hostPort (address: string): { host: string, port: number } {
  const at = address.lastIndexOf(':')
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) }
}

/** A real repository that counts the calls made to it. */
export class CountingRepository implements VisitsRepository {
  readonly calls = { add: 0, latest: 0 }
  constructor (readonly inner: VisitsRepository) {}

  get kind (): VisitsRepository['kind'] {
    return this.inner.kind
  }

  get usage (): VisitsRepository['usage'] {
    return this.inner.usage
  }

  async add (id: string, visit: Visit, options?: CallOptions): Promise<StoredVisit> {
    this.calls.add++
    return await this.inner.add(id, visit, options)
  }

  async find (id: string, options?: CallOptions): Promise<StoredVisit | undefined> {
    return await this.inner.find(id, options)
  }

  async latest (limit: number, options?: CallOptions): Promise<StoredVisit[]> {
    this.calls.latest++
    return await this.inner.latest(limit, options)
  }

  async ping (): Promise<void> {
    await this.inner.ping()
  }
}

/** A client with a cookie jar that submits forms as a browser would, with the last page's CSRF token. */
export class FormClient {
  readonly #cookies = new Map<string, string>()
  #token = ''
  constructor (readonly app: FastifyInstance) {}

  async get (url: string, headers: Record<string, string> = {}): Promise<Awaited<ReturnType<FastifyInstance['inject']>>> {
    const response = await this.app.inject({ url, headers: { ...headers, cookie: this.cookieHeader() } })
    this.#keep(response)
    this.#token = /name="_csrf" value="([^"]+)"/.exec(response.body)?.[1] ?? this.#token
    return response
  }

  async post (url: string, fields: Record<string, string>): Promise<Awaited<ReturnType<FastifyInstance['inject']>>> {
    const response = await this.app.inject({
      method: 'POST',
      url,
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...fields, _csrf: this.#token }).toString()
    })
    this.#keep(response)
    return response
  }

  cookieNames (): string[] {
    return [...this.#cookies.keys()]
  }

  cookieHeader (): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('; ')
  }

  #keep (response: { cookies: Array<{ name: string, value: string }> }): void {
    for (const { name, value } of response.cookies) this.#cookies.set(name, value)
  }
}

// The built server, as the Docker image runs it; `npm test` builds it first.
export const serverJs = fileURLToPath(new URL('../dist/server.js', import.meta.url))

export interface Running {
  child: ChildProcess
  port: number
  lines: () => Array<Record<string, unknown>>
  exited: Promise<number | null>
}

/** Runs the built server (dist/server.js) with the environment (and node options) given; killed when the test ends. */
export async function startServer (t: Test, env: Record<string, string>, fixedPort?: number, nodeArgs: string[] = []): Promise<Running> {
  const port = fixedPort ?? await freePort()
  const child = spawn(process.execPath, [...nodeArgs, serverJs], {
    env: { PATH: process.env.PATH ?? '', METADATA_SERVER_DETECTION: 'none', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const lines = () => out.split('\n').filter((l) => l !== '').map((l) => {
    try { return JSON.parse(l) as Record<string, unknown> } catch { return { unparsed: l } }
  })
  await waitFor('the server to listen or exit', () => {
    if (child.exitCode !== null) return true
    return lines().some((l) => typeof l.message === 'string' && l.message.startsWith('Server listening'))
  }, 10_000)
  if (child.exitCode !== null) t.comment(`the server exited at start-up: ${JSON.stringify(lines())}`)
  return { child, port, lines, exited }
}
