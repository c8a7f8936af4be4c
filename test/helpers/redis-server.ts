import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './ports.js'
import { waitFor } from './wait.js'

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
