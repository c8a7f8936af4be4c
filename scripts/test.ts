/**
 * The test command: uses the Redis and the Firestore emulators (native and Datastore mode) the
 * environment names (REDISHOST/REDISPORT, FIRESTORE_EMULATOR_HOST, DATASTORE_EMULATOR_HOST),
 * starts its own on free ports when none is named, and the Docker engine DOCKER_HOST names (or its own dockerd),
 * runs tap, stops what it started, and ends with the line "N passed, N failed".
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, openSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { freePort } from '../test/helpers/ports.js'

const started: Array<{ name: string, stop: () => Promise<void> }> = []

/** A prerequisite is missing: the run ends with what to install, after stopping what it started. */
class PrerequisiteError extends Error {}

function fail (message: string): never {
  throw new PrerequisiteError(message)
}

function installed (command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

async function waitUntil (what: string, check: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child?.exitCode !== null && child?.exitCode !== undefined) fail(`${what} exited with code ${child.exitCode} before it was ready.`)
    if (await check().catch(() => false)) return
    await sleep(200)
  }
  fail(`${what} was not ready within ${timeoutMs / 1000} s.`)
}

async function redisAnswers (port: number): Promise<boolean> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } finally {
    client.disconnect()
  }
}

async function startRedis (): Promise<Record<string, string>> {
  if (!installed('redis-server')) {
    fail('redis-server is not installed. Install Redis (Debian: apt-get install redis-server), or set REDISHOST and REDISPORT to a Redis the tests may use.')
  }
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  started.push({
    name: 'redis-server',
    stop: async () => {
      child.kill('SIGTERM')
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve))
    }
  })
  await waitUntil(`redis-server on port ${port}`, async () => await redisAnswers(port), 10_000, child)
  console.log(`# started redis-server on 127.0.0.1:${port}`)
  return { REDISHOST: '127.0.0.1', REDISPORT: String(port) }
}

/** The Firestore emulator in native mode, or in Datastore mode (App Engine's data, for the Datastore backend and the copy command). */
async function startEmulator (mode: 'native' | 'datastore'): Promise<Record<string, string>> {
  const variable = mode === 'native' ? 'FIRESTORE_EMULATOR_HOST' : 'DATASTORE_EMULATOR_HOST'
  const name = mode === 'native' ? 'Firestore emulator' : 'Firestore emulator in Datastore mode'
  if (!installed('gcloud') || !installed('java')) {
    fail('The Firestore emulator needs the Google Cloud CLI with its Firestore emulator component and Java 17 or later ' +
      '(Debian: apt-get install google-cloud-cli google-cloud-cli-firestore-emulator openjdk-17-jre-headless), ' +
      `or set ${variable} to a running emulator${mode === 'native' ? '' : ' started with --database-mode=datastore-mode'}.`)
  }
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const modeArgs = mode === 'native' ? [] : ['--database-mode=datastore-mode']
  const child = spawn('gcloud', ['emulators', 'firestore', 'start', `--host-port=${host}`, ...modeArgs, '--quiet'], {
    stdio: 'ignore',
    env: { ...process.env, JAVA_TOOL_OPTIONS: process.env.JAVA_TOOL_OPTIONS ?? '-Xmx512m' }
  })
  started.push({
    name,
    // Killing the gcloud wrapper would orphan the Java process: ask the emulator itself to stop.
    stop: async () => {
      await fetch(`http://${host}/shutdown`, { method: 'POST' }).catch(() => {})
      if (child.exitCode === null) {
        await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(10_000)])
      }
    }
  })
  await waitUntil(`${name} on ${host}`, async () => (await fetch(`http://${host}/`)).ok, 60_000, child)
  console.log(`# started the ${name} on ${host}`)
  return { [variable]: host }
}

/** Runs a command to its end; its output goes to ours, as comment lines. */
async function runShown (command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number, output: string }> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const show = (chunk: Buffer) => {
    output += chunk.toString()
    process.stdout.write(chunk.toString().split('\n').filter((l) => l !== '').map((l) => l.startsWith('#') ? `${l}\n` : `# ${l}\n`).join(''))
  }
  child.stdout.on('data', show)
  child.stderr.on('data', show)
  const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? 1)))
  return { code, output }
}

async function dockerAnswers (env: NodeJS.ProcessEnv): Promise<boolean> {
  return await new Promise((resolve) => {
    const child = spawn('docker', ['info', '--format', '{{.ServerVersion}}'], { env, stdio: 'ignore' })
    child.once('error', () => resolve(false))
    child.once('close', (code) => resolve(code === 0))
  })
}

/**
 * The Docker engine of the image and compose tests (test/docker/): the one DOCKER_HOST (or the
 * default socket) names, or else a dockerd of its own, started as .ci/run starts one: the host's
 * network only (no bridge, no iptables rules), its own data root (the images stay cached between
 * runs) and socket; stopped by its pid afterwards. Then the base images: the real ones if present,
 * otherwise the local stand-ins test/docker/standins.sh builds (and caches).
 */
async function dockerEngine (env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  if (!installed('docker-compose')) fail('docker-compose is not installed (Debian: apt-get install docker-compose): the compose tests run docker-compose.yml with it.')
  if (!installed('docker')) fail('Docker is not installed (Debian: apt-get install docker.io): the image and compose tests need its client and engine.')
  const ours: Record<string, string> = {}
  if (!(await dockerAnswers(env))) {
    if (!installed('dockerd') || process.getuid?.() !== 0) {
      fail(`No Docker engine answers (DOCKER_HOST=${env.DOCKER_HOST ?? 'unset'}) and none can be started here: install Docker ` +
        '(Debian: apt-get install docker.io) and run the tests as root, which starts one, or start dockerd and set DOCKER_HOST.')
    }
    const runDir = '/run/visitme-docker'
    mkdirSync(runDir, { recursive: true })
    ours.DOCKER_HOST = `unix://${runDir}/docker.sock`
    const log = openSync(`${runDir}/dockerd.log`, 'w')
    const child = spawn('dockerd', ['--bridge=none', '--iptables=false', '--ip-masq=false', '--data-root=/var/lib/visitme-docker',
      `--exec-root=${runDir}/exec`, `--pidfile=${runDir}/dockerd.pid`, `--host=${ours.DOCKER_HOST}`], { stdio: ['ignore', log, log] })
    started.push({
      name: 'dockerd',
      stop: async () => {
        child.kill('SIGTERM')
        if (child.exitCode === null) await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(30_000)])
      }
    })
    await waitUntil('dockerd', async () => await dockerAnswers({ ...env, ...ours }), 60_000, child)
    console.log(`# started dockerd (pid ${child.pid}) on ${ours.DOCKER_HOST}, host network only`)
  }
  const began = Date.now()
  const standins = await runShown('bash', [fileURLToPath(new URL('../test/docker/standins.sh', import.meta.url))], { ...env, ...ours })
  if (standins.code !== 0) fail(`The base images are missing and their stand-ins could not be built:\n${standins.output.trim()}`)
  console.log(`# base images ready in ${((Date.now() - began) / 1000).toFixed(1)} s`)
  return ours
}

async function stopStarted (): Promise<void> {
  for (const service of started.splice(0).reverse()) {
    await service.stop().catch((err) => console.error(`# could not stop ${service.name}: ${String(err)}`))
  }
}

async function runTap (env: NodeJS.ProcessEnv, args: string[]): Promise<{ code: number, summary?: Record<string, number> }> {
  // Piped, tap would fall back to plain TAP: keep its readable reporter in a terminal.
  const color = process.stdout.isTTY ? ['--color'] : []
  const child = spawn('npx', ['tap', ...color, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  let tail = ''
  child.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk)
    tail = (tail + chunk.toString()).slice(-4096)
  })
  const code = await new Promise<number>((resolve) => child.once('close', (c) => resolve(c ?? 1)))
  // tap ends with a line like "# { total: 12, pass: 11, fail: 1, skip: 0 }".
  // eslint-disable-next-line no-control-regex
  const plain = tail.replace(/\u001b\[[0-9;]*m/g, '')
  const line = plain.split('\n').reverse().find((l) => /^# \{ total: \d+/.test(l))
  const summary = line === undefined
    ? undefined
    : Object.fromEntries([...line.matchAll(/(\w+): (\d+)/g)].map(([, k, v]) => [k!, Number(v)]))
  return { code, summary }
}

async function main (): Promise<{ code: number, line: string }> {
  // Whatever ends the run, what it started is stopped: a signal, or a reader that closed the pipe (`| head`).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => { stopStarted().finally(() => process.exit(130)).catch(() => {}) })
  }
  process.stdout.on('error', () => {})
  const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: process.env.METADATA_SERVER_DETECTION ?? 'none' }
  try {
    if (env.REDISHOST === undefined || env.REDISHOST === '') Object.assign(env, await startRedis())
    // Both emulators at once: each takes seconds to start.
    const emulators = await Promise.allSettled([
      env.FIRESTORE_EMULATOR_HOST === undefined || env.FIRESTORE_EMULATOR_HOST === '' ? startEmulator('native') : {},
      env.DATASTORE_EMULATOR_HOST === undefined || env.DATASTORE_EMULATOR_HOST === '' ? startEmulator('datastore') : {}
    ])
    for (const outcome of emulators) {
      if (outcome.status === 'rejected') throw outcome.reason
      Object.assign(env, outcome.value)
    }
    // The Docker tests, when they are part of this run (all of them, or files named under test/docker/).
    const args = process.argv.slice(2)
    if (args.every((a) => a.startsWith('-')) || args.some((a) => a.includes('test/docker'))) Object.assign(env, await dockerEngine(env))
    else if (args.some((a) => a.includes('deploy')) && !installed('docker-compose')) fail('docker-compose is not installed (Debian: apt-get install docker-compose): it validates docker-compose.yml.')
    const redis = `${env.REDISHOST}:${env.REDISPORT ?? 6379}`
    console.log(`# Redis ${redis}, Firestore emulator ${env.FIRESTORE_EMULATOR_HOST}, in Datastore mode ${env.DATASTORE_EMULATOR_HOST}`)
    // Tests get the services under names of their own and pass them to the code explicitly:
    // the clients would let FIRESTORE_EMULATOR_HOST and DATASTORE_EMULATOR_HOST override any host a test chooses.
    const { REDISHOST, REDISPORT, FIRESTORE_EMULATOR_HOST, DATASTORE_EMULATOR_HOST, ...rest } = env
    const { code, summary } = await runTap({
      ...rest,
      TEST_REDIS: redis,
      TEST_FIRESTORE_EMULATOR: FIRESTORE_EMULATOR_HOST,
      TEST_DATASTORE_EMULATOR: DATASTORE_EMULATOR_HOST
    }, process.argv.slice(2))
    const passed = summary?.pass ?? 0
    // A crashed file or a non-zero exit without a failed assertion still counts as a failure.
    const failed = Math.max(summary?.fail ?? 0, code === 0 ? 0 : 1)
    const skipped = (summary?.skip ?? 0) + (summary?.todo ?? 0)
    return {
      code: failed > 0 ? 1 : code,
      line: `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`
    }
  } catch (err) {
    if (!(err instanceof PrerequisiteError)) throw err
    console.error(`\n${err.message}\n`)
    return { code: 1, line: '0 passed, 1 failed' }
  } finally {
    await stopStarted()
  }
}

const { code, line } = await main()
console.log(line)
process.exitCode = code
