/**
 * The image `gcloud run deploy --source .` builds, run for real: built from a clean clone with
 * the project's Dockerfile, run with the host's network against the test's Redis and Firestore
 * emulator, stopped with `docker stop` under load. The base image may be a local stand-in of
 * node:24-slim (test/docker/standins.sh says what that is); elsewhere it is the real one.
 */
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { Test } from 'tap'
import { testConfig } from '../helpers/app.js'
import { freePort } from '../helpers/ports.js'
import { serverJs } from '../helpers/server-process.js'
import { emulatorHost, redisTarget, uniqueName } from '../helpers/services.js'
import { shutdownUnderLoad, type ServerUnderTest } from '../fault/shutdown.js'
import { APP_BUILD_STAGE, APP_IMAGE, cleanContext, containerLines, docker, dockerOut, engineReady, LABEL, mb } from './docker.js'

// A first build on a fresh machine runs npm ci in the image: minutes, not seconds.
t.setTimeout(20 * 60_000)
/** Well under Cloud Run's 10 s, as for the bare process (test/fault/sigterm.test.ts). */
const EXIT_BOUND_MS = 5000
/** Cloud Run's startup probe (service.yaml) gives the container 10 one-second tries. */
const FIRST_PAGE_BOUND_MS = 10_000

/** The environment both the container and the bare process get: the test's Redis and emulator, a port of its own. */
function serviceEnv (port: number, collection = testConfig().visits.collection): Record<string, string> {
  const redis = redisTarget()
  return {
    METADATA_SERVER_DETECTION: 'none',
    HOST: '127.0.0.1',
    PORT: String(port),
    REDISHOST: redis.host,
    REDISPORT: String(redis.port),
    FIRESTORE_EMULATOR_HOST: emulatorHost(),
    CACHE_NAMESPACE: uniqueName('image'),
    VISITS_COLLECTION: collection,
    // The load tests send thousands of visits from one address.
    RATE_LIMIT_WRITES: '0'
  }
}

/** Polls GET / until a whole page of this visitor comes back; returns when it did (performance.now()). */
async function firstPage (port: number, visitor: string, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`, { headers: { 'user-agent': visitor } })
      const body = await response.text()
      if (response.status === 200 && body.includes(visitor)) return performance.now()
    } catch {
      // Not listening yet.
    }
    await sleep(10)
  }
  throw new Error(`no page within ${timeoutMs} ms`)
}

/** `docker run -d` of the image with the host's network; removed when the test ends. */
async function runContainer (t: Test, env: Record<string, string>): Promise<string> {
  const name = uniqueName('visitme-ci')
  t.teardown(async () => { await docker('rm', '-f', name) })
  await dockerOut('run', '-d', '--name', name, '--network', 'host', ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), APP_IMAGE)
  return name
}

/** The container as a server under test: stopped with `docker stop`, its exit as the engine saw it. */
async function containerUnderTest (t: Test): Promise<ServerUnderTest> {
  const port = await freePort()
  const collection = testConfig().visits.collection
  const name = await runContainer(t, serviceEnv(port, collection))
  const waited = spawn('docker', ['wait', name], { stdio: ['ignore', 'pipe', 'ignore'] })
  const exited = new Promise<{ code: number | null, at: number }>((resolve) => {
    let out = ''
    waited.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    waited.once('close', () => {
      dockerOut('inspect', '-f', '{{.State.FinishedAt}}', name).then((finished) => {
        // RFC 3339 with nanoseconds: milliseconds are enough.
        const at = Date.parse(finished.replace(/(\.\d{3})\d*/, '$1'))
        resolve({ code: out.trim() === '' ? null : Number(out.trim()), at })
      }, () => resolve({ code: null, at: Date.now() }))
    })
  })
  // Ready once /health answers: a page would store a visit the load's ledger does not know of.
  const deadline = Date.now() + 15_000
  while (!(await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`the container did not answer /health within 15 s: ${JSON.stringify(containerLines(name))}`)
    await sleep(25)
  }
  return {
    url: `http://127.0.0.1:${port}/`,
    collection,
    signal: () => { spawn('docker', ['stop', name], { stdio: 'ignore' }) },
    exited,
    lines: () => containerLines(name)
  }
}

if (engineReady(t)) {
  t.test('the image builds from a clean clone with the project\'s Dockerfile; its size', async (t) => {
    const context = await cleanContext(t)
    const previous = await docker('image', 'inspect', '-f', '{{.Id}}', APP_IMAGE)
    const build = await docker('build', '--network', 'host', '--label', LABEL, '-t', APP_IMAGE, context)
    t.equal(build.code, 0, `docker build: ${build.code === 0 ? 'ok' : build.stdout.slice(-3000) + build.stderr.slice(-2000)}`)
    if (build.code !== 0) return
    const cached = [...build.stdout.matchAll(/Using cache/g)].length
    t.comment(`built in ${(build.ms / 1000).toFixed(1)} s (${cached} steps from the layer cache)`)
    // Its build stage stays tagged, so the next build reuses its layers; older images of these tags go.
    await dockerOut('build', '--network', 'host', '--label', LABEL, '--target', 'build', '-t', APP_BUILD_STAGE, context)
    await docker('image', 'prune', '-f', '--filter', `label=${LABEL}`)
    if (previous.code === 0) t.comment(`replaced ${previous.stdout.trim().slice(7, 19)}`)

    const size = Number(await dockerOut('image', 'inspect', '-f', '{{.Size}}', APP_IMAGE))
    const base = Number(await dockerOut('image', 'inspect', '-f', '{{.Size}}', 'node:24-slim'))
    t.comment(`image size ${mb(size)}: node:24-slim ${mb(base)} + the app's layers ${mb(size - base)}`)
    t.ok(size - base > 0 && size - base < 150e6, `the app adds ${mb(size - base)} to the base image (production dependencies, compiled code, templates)`)
  })

  t.test('it runs as the unprivileged node user, with read-only application files and no dev dependencies', async (t) => {
    t.equal(await dockerOut('image', 'inspect', '-f', '{{.Config.User}}', APP_IMAGE), 'node')
    const out = await dockerOut('run', '--rm', '--network', 'none', APP_IMAGE, 'sh', '-c', [
      'id -u', 'id -un', 'pwd',
      // Anything under /app the user may write to, or that is not root's: expected none.
      'find /app -writable -print | head -n 5 | sed "s/^/writable: /"',
      'find /app ! -user root -print | head -n 5 | sed "s/^/not root\'s: /"',
      'touch /app/dist/server.js 2>/dev/null && echo "touch: allowed"',
      'for d in typescript tap eslint tsx; do [ -e node_modules/$d ] && echo "dev dependency: $d"; done',
      'ls dist/server.js templates public package.json >/dev/null && echo files: ok'
    ].join('; '))
    const [uid, user, cwd, ...rest] = out.split('\n')
    t.equal(uid, '1000', 'uid 1000, not root')
    t.equal(user, 'node')
    t.equal(cwd, '/app')
    t.same(rest, ['files: ok'], 'nothing under /app writable by it or owned by it; no dev dependency installed')
  })

  t.test('it serves /health and GET / against the host\'s Redis and the emulator; docker run to the first page, next to the bare process', async (t) => {
    // The bare process: the built server, as `npm start` runs it.
    const barePort = await freePort()
    const bareStarted = performance.now()
    const bare = spawn(process.execPath, [serverJs], { env: { PATH: process.env.PATH ?? '', ...serviceEnv(barePort) }, stdio: 'ignore' })
    t.teardown(() => { if (bare.exitCode === null) bare.kill('SIGKILL') })
    const bareMs = await firstPage(barePort, 'first visitor', 15_000) - bareStarted
    bare.kill('SIGTERM')

    const port = await freePort()
    const started = performance.now()
    const name = await runContainer(t, serviceEnv(port))
    const imageMs = await firstPage(port, 'first visitor', 15_000) - started
    t.comment(`first page ${imageMs.toFixed(0)} ms after docker run; the bare process (node ${process.version} on the host): ${bareMs.toFixed(0)} ms after its spawn`)
    t.ok(imageMs < FIRST_PAGE_BOUND_MS, `docker run to the first page within Cloud Run's startup probe (${imageMs.toFixed(0)} ms)`)

    const health = await fetch(`http://127.0.0.1:${port}/health`)
    t.equal(health.status, 200)
    t.same(await health.json(), { status: 'ok', redis: 'up', firestore: 'up' }, 'Redis and Firestore both up')
    const page = await fetch(`http://127.0.0.1:${port}/`, { headers: { 'user-agent': 'second visitor' } })
    t.equal(page.status, 200)
    const body = await page.text()
    t.match(body, /second visitor/)
    t.match(body, /first visitor/, 'the first visit is listed too: stored and read back')
    const uid = (await dockerOut('exec', name, 'sh', '-c', 'grep ^Uid: /proc/1/status')).split(/\s+/)[1]
    t.equal(uid, '1000', 'the server process runs as uid 1000')
    const lines = containerLines(name)
    t.ok(lines.every((l) => l.unparsed === undefined && typeof l.severity === 'string'), 'every log line is Cloud Logging JSON')
  })

  t.test('docker stop under load of a new connection per request, with a connection open that has sent nothing: no request dropped, exit code 0 well under 10 s', async (t) => {
    await shutdownUnderLoad(t, await containerUnderTest(t), { fresh: true, clients: 16, silentConnection: true, exitBoundMs: EXIT_BOUND_MS })
  })

  t.test('docker stop under load on kept-alive connections: no request dropped, exit code 0 well under 10 s', async (t) => {
    await shutdownUnderLoad(t, await containerUnderTest(t), { exitBoundMs: EXIT_BOUND_MS })
  })
}
