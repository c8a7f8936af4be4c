/**
 * `docker compose up` of the project's docker-compose.yml, run for real with docker-compose
 * (1.29, Debian's package): its images (the base ones may be local stand-ins, see
 * test/docker/standins.sh), its health checks and its start order. The one change: every service
 * on the host's network, on free ports, since the machine's own Redis already has 6379 and
 * containers here reach nothing but 127.0.0.1. docker-compose v1 adds an override's `ports` to
 * the file's instead of replacing them, and Docker refuses published ports on the host network,
 * so the test writes that variant of the file (docker-compose.host-network.yml in the clean
 * context) from the real one, changing only those settings.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { parse } from 'yaml'
import { freePort } from '../helpers/ports.js'
import { testFirestore, uniqueName } from '../helpers/services.js'
import { storedVisits } from '../fault/checks.js'
import { cleanContext, docker, dockerOut, engineReady, run } from './docker.js'

// The app's image is built by compose (from the layer cache when test/docker/image.test.ts built it).
t.setTimeout(15 * 60_000)

interface Service {
  image?: string
  build?: unknown
  command?: string[]
  environment?: Record<string, string>
  ports?: string[]
  healthcheck?: { test: string[], interval: string, timeout: string, retries: number }
  depends_on?: Record<string, { condition: string }>
  network_mode?: string
}

/** The project's compose file with every service on the host's network on the given ports; nothing else changes. */
function onHostNetwork (compose: { services: Record<string, Service> }, ports: { app: number, redis: number, firestore: number }): { services: Record<string, Service> } {
  const { app, redis, firestore } = structuredClone(compose.services)
  if (app === undefined || redis === undefined || firestore === undefined) throw new Error('docker-compose.yml has no app, redis or firestore service')
  const emulatorPort = /--host-port=0\.0\.0\.0:(\d+)/.exec(firestore.command?.join(' ') ?? '')?.[1]
  if (emulatorPort === undefined) throw new Error('the firestore service no longer starts the emulator with --host-port=0.0.0.0:PORT')
  if (redis.healthcheck?.test.join(' ') !== 'CMD redis-cli ping') throw new Error('the redis health check is no longer `redis-cli ping`')

  delete app.ports
  app.network_mode = 'host'
  // docker-compose v1 builds with its own client: the build's npm ci needs the host's network too.
  app.build = { context: '.', network: 'host' }
  app.environment = {
    ...app.environment,
    HOST: '127.0.0.1',
    PORT: String(ports.app),
    REDISHOST: '127.0.0.1',
    REDISPORT: String(ports.redis),
    FIRESTORE_EMULATOR_HOST: `127.0.0.1:${ports.firestore}`
  }
  redis.network_mode = 'host'
  redis.command = [...(redis.command ?? ['redis-server']), '--port', String(ports.redis), '--bind', '127.0.0.1']
  redis.healthcheck = { ...redis.healthcheck, test: ['CMD', 'redis-cli', '-p', String(ports.redis), 'ping'] }
  firestore.network_mode = 'host'
  firestore.command = firestore.command!.map((arg) => arg.replace(`--host-port=0.0.0.0:${emulatorPort}`, `--host-port=127.0.0.1:${ports.firestore}`))
  firestore.healthcheck = { ...firestore.healthcheck!, test: firestore.healthcheck!.test.map((arg) => arg.replaceAll(`:${emulatorPort}/`, `:${ports.firestore}/`)) }
  return { ...compose, services: { app, redis, firestore } }
}

async function listening (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

if (engineReady(t)) {
  t.test('docker compose up: the app waits for Redis and the emulator to be healthy, then serves a page that records a visit; down leaves nothing', async (t) => {
    const context = await cleanContext(t)
    const compose = parse(await readFile(join(context, 'docker-compose.yml'), 'utf8'))
    const ports = { app: await freePort(), redis: await freePort(), firestore: await freePort() }
    const file = 'docker-compose.host-network.yml'
    // JSON is YAML that docker-compose's YAML 1.1 parser cannot misread (an unquoted no is false there).
    await writeFile(join(context, file), JSON.stringify(onHostNetwork(compose, ports), null, 2))
    const project = uniqueName('visitme-ci').replace(/-/g, '')
    const composeCmd = async (...args: string[]) => await run('docker-compose', ['-p', project, '-f', file, ...args], { cwd: context })
    const down = async () => await composeCmd('down', '--rmi', 'local', '--volumes', '--remove-orphans', '--timeout', '10')
    let downed = false
    t.teardown(async () => { if (!downed) await down() })

    const began = new Date()
    const up = await composeCmd('up', '-d')
    t.equal(up.code, 0, `docker-compose up -d: ${up.code === 0 ? 'ok' : up.stderr.slice(-3000)}`)
    if (up.code !== 0) return
    let firstPage: Response | undefined
    const deadline = Date.now() + 30_000
    while (firstPage === undefined && Date.now() < deadline) {
      firstPage = await fetch(`http://127.0.0.1:${ports.app}/`, { headers: { 'user-agent': 'compose visitor' } }).catch(() => undefined)
      if (firstPage === undefined) await sleep(50)
    }
    const firstPageAt = Date.now()
    const upMs = firstPageAt - began.getTime()
    t.ok(firstPage !== undefined, 'the app answers')
    if (firstPage === undefined) {
      t.comment((await composeCmd('logs', '--no-color')).stdout.slice(-5000))
      return
    }
    t.comment(`docker-compose up to the first page: ${(upMs / 1000).toFixed(1)} s, the app's image build included (${[...up.stdout.matchAll(/Using cache/g)].length} steps from the layer cache)`)
    t.equal(firstPage.status, 200)
    t.match(await firstPage.text(), /compose visitor/, 'the page lists the visit')

    // The start order, as the engine recorded it.
    const events = (await dockerOut('events', '--since', String(Math.floor(began.getTime() / 1000) - 1), '--until', String(Math.ceil(Date.now() / 1000) + 1),
      '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'type=container', '--format', '{{json .}}'))
      .split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { status: string, timeNano: number, Actor: { Attributes: Record<string, string> } })
    const at = (service: string, status: string) => events.find((e) => e.Actor.Attributes['com.docker.compose.service'] === service && e.status === status)?.timeNano
    const redisHealthy = at('redis', 'health_status: healthy')
    const firestoreHealthy = at('firestore', 'health_status: healthy')
    const appStarted = at('app', 'start')
    t.ok(redisHealthy !== undefined && firestoreHealthy !== undefined, 'both health checks passed: redis-cli ping, and curl on the emulator')
    t.ok(appStarted !== undefined && appStarted > (redisHealthy ?? Infinity) && appStarted > (firestoreHealthy ?? Infinity),
      'the app started only once both were healthy')
    const after = (from?: number, to?: number) => from === undefined || to === undefined ? '?' : `${((to - from) / 1e9).toFixed(1)} s`
    t.comment(`healthy after their start: redis ${after(at('redis', 'start'), redisHealthy)}, the emulator ${after(at('firestore', 'start'), firestoreHealthy)}; ` +
      `the app started ${after(Math.max(redisHealthy ?? 0, firestoreHealthy ?? 0), appStarted)} after the later of the two and served its first page ` +
      `${after(appStarted, firstPageAt * 1e6)} after its start`)

    const health = await (await fetch(`http://127.0.0.1:${ports.app}/health`)).json()
    t.same(health, { status: 'ok', redis: 'up', firestore: 'up' })
    const db = await testFirestore(t, `127.0.0.1:${ports.firestore}`)
    const visits = await storedVisits(db, 'visits')
    t.same(visits.map((v) => v.visitor), ['compose visitor'], 'the visit is stored in the emulator the compose file runs')

    const stopped = await down()
    downed = true
    t.equal(stopped.code, 0, `docker-compose down: ${stopped.code === 0 ? 'ok' : stopped.stderr}`)
    t.same((await dockerOut('ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${project}`)).split('\n').filter((l) => l !== ''), [], 'no container left, running or stopped')
    t.same((await dockerOut('network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`)).split('\n').filter((l) => l !== ''), [], 'no network left')
    t.equal((await docker('image', 'inspect', `${project}_app`)).code, 1, 'the app image compose built is removed')
    for (const [service, port] of Object.entries(ports)) t.notOk(await listening(port), `nothing listens on ${service}'s port any more`)
  })
}
