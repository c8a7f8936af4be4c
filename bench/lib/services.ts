/**
 * The backends a harness starts for itself: a redis-server without persistence and the Firestore
 * emulator, each on a free 127.0.0.1 port, registered with the harness's Cleanup and listed in
 * what it started (bench/run.ts, pinned to its load core; bench/scale.ts).
 */
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { freePort } from '../../test/helpers/ports.js'
import { BenchError, type Cleanup, descendants, httpRequest, installed, spawnTracked, stopProcess, waitFor } from './processes.js'

export interface Started { what: string, pid: number, port?: number }

export interface Harness {
  cleanup: Cleanup
  started: Started[]
  log: (message: string) => void
  /** The core the backends are pinned to; unpinned without one. */
  core?: number
}

/** A redis-server of the harness's own, and a client of the harness on it. */
export async function startRedis ({ cleanup, started, log, core }: Harness): Promise<{ port: number, client: Redis }> {
  if (!installed('redis-server')) throw new BenchError('redis-server is not installed (Debian: apt-get install redis-server)')
  const port = await freePort()
  const redis = spawnTracked('redis-server', core, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { cwd: tmpdir() })
  started.push({ what: 'redis-server', pid: redis.pid, port })
  cleanup.add('redis-server', async () => { await stopProcess(redis, 5000) })
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 5000, retryStrategy: () => 200 })
  client.on('error', () => {})
  cleanup.add('the harness\'s Redis client', async () => { client.disconnect() })
  await waitFor(`redis-server on 127.0.0.1:${port}`, async () => {
    if (client.status === 'wait') await client.connect()
    return (await client.ping()) === 'PONG'
  }, 10_000, redis)
  log(`redis-server on 127.0.0.1:${port} (pid ${redis.pid})`)
  return { port, client }
}

/** A Firestore emulator of the harness's own; its host:port. Stopped through its /shutdown endpoint, never by killing the gcloud wrapper. */
export async function startEmulator ({ cleanup, started, log, core }: Harness): Promise<string> {
  if (!installed('gcloud') || !installed('java')) {
    throw new BenchError('the Firestore emulator needs the Google Cloud CLI with its Firestore emulator and Java 17+ ' +
      '(Debian: apt-get install google-cloud-cli google-cloud-cli-firestore-emulator openjdk-17-jre-headless), or set BENCH_FIRESTORE_EMULATOR=host:port')
  }
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const emulator = spawnTracked('Firestore emulator', core, 'gcloud', ['emulators', 'firestore', 'start', `--host-port=${host}`, '--quiet'], {
    cwd: tmpdir(),
    env: { ...process.env, JAVA_TOOL_OPTIONS: '-Xmx512m' }
  })
  started.push({ what: 'Firestore emulator (gcloud wrapper)', pid: emulator.pid, port })
  cleanup.add('Firestore emulator', async () => {
    // Killing the gcloud wrapper would orphan the Java process: the emulator is asked to stop itself.
    await httpRequest(`http://${host}/shutdown`, { method: 'POST', timeoutMs: 5000 }).catch(() => {})
    const exited = await Promise.race([emulator.exited.then(() => true), sleep(20_000).then(() => false)])
    if (exited) return
    // It did not stop: end its Java process(es) by pid; the wrapper then exits by itself.
    for (const pid of descendants(emulator.pid).reverse()) {
      try { process.kill(pid, 'SIGTERM') } catch {}
    }
    const gone = await Promise.race([emulator.exited.then(() => true), sleep(10_000).then(() => false)])
    if (!gone) throw new BenchError(`the Firestore emulator (pid ${emulator.pid}) did not stop after POST /shutdown and SIGTERM to its Java process`)
  })
  await waitFor(`Firestore emulator on ${host}`, async () => (await httpRequest(`http://${host}/`, { timeoutMs: 2000 })).status === 200, 60_000, emulator, 200)
  for (const pid of descendants(emulator.pid)) started.push({ what: 'Firestore emulator (child of the wrapper)', pid })
  log(`Firestore emulator on ${host} (pid ${emulator.pid})`)
  return host
}
