/**
 * What the Docker tests share: the docker client, the engine check, a clean build context, and
 * the names of the images they build.
 *
 * The engine: the one DOCKER_HOST names, or the default socket; `npm test` starts one of its own
 * when none answers (scripts/test.ts), and so does .ci/run. Its containers use the host's
 * network only (the tests pass --network host, and the engine .ci/run and `npm test` start has
 * no bridge at all): everything they reach is on 127.0.0.1.
 *
 * Stand-ins: where no image registry is reachable, test/docker/standins.sh builds local images
 * under the names the Dockerfile and docker-compose.yml use (node:24-slim, redis:7-alpine, the
 * Google Cloud CLI emulators image) from Debian's packages, the npm registry and the Firestore
 * emulator installed here. On a machine that reaches the registries, Docker pulls the real ones
 * instead (see the README, "Local development").
 */
import { spawn, spawnSync } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const root = fileURLToPath(new URL('../..', import.meta.url))

/** The images the Dockerfile and docker-compose.yml name. */
export const BASE_IMAGES = ['node:24-slim', 'redis:7-alpine', 'gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators']
/** The image the tests build from the project's Dockerfile, and its build stage (kept tagged so its layers stay cached). */
export const APP_IMAGE = 'visitme-ci:image'
export const APP_BUILD_STAGE = 'visitme-ci:build'
/** Every image the tests build carries it: old ones are pruned by it, and nothing else is. */
export const LABEL = 'visitme.ci=1'

/** The classic builder (`docker build` without BuildKit) and docker-compose's own builder: no buildx plugin needed. */
export const dockerEnv: NodeJS.ProcessEnv = { ...process.env, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' }

export interface Run { code: number | null, stdout: string, stderr: string, ms: number }

/** Runs a command to its end (docker, docker-compose), output collected. */
export async function run (command: string, args: readonly string[], { cwd = root, timeoutMs = 600_000 } = {}): Promise<Run> {
  const started = performance.now()
  return await new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: dockerEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', (err) => { stderr += String(err) })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, ms: performance.now() - started })
    })
  })
}

export async function docker (...args: string[]): Promise<Run> {
  return await run('docker', args)
}

/** Runs docker and returns its trimmed output; a non-zero exit throws with what it printed. */
export async function dockerOut (...args: string[]): Promise<string> {
  const result = await docker(...args)
  if (result.code !== 0) throw new Error(`docker ${args.join(' ')} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`)
  return result.stdout.trim()
}

/**
 * A Docker engine answers and the base images are there. Otherwise the test fails (never skips)
 * with what to install or run; returns false then.
 */
export function engineReady (t: Test): boolean {
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { env: dockerEnv, encoding: 'utf8' })
  if (info.error !== undefined) {
    t.fail('the docker client is not installed: install Docker (Debian: apt-get install docker.io), or run .ci/run, which does')
    return false
  }
  if (info.status !== 0) {
    t.fail(`no Docker engine answers (DOCKER_HOST=${process.env.DOCKER_HOST ?? 'unset'}): start dockerd (Debian: apt-get install docker.io), ` +
      `or run the tests with npm test as root, which starts one: ${info.stderr.trim()}`)
    return false
  }
  const missing = BASE_IMAGES.filter((image) => spawnSync('docker', ['image', 'inspect', image], { env: dockerEnv, stdio: 'ignore' }).status !== 0)
  if (missing.length > 0) {
    t.fail(`missing images ${missing.join(', ')}: docker pull them, or build the stand-ins with test/docker/standins.sh (npm test does)`)
    return false
  }
  t.comment(`Docker engine ${info.stdout.trim()}; base images: ${BASE_IMAGES.map(describeBase).join('; ')}`)
  return true
}

/** A base image, and whether it is a local stand-in (test/docker/standins.sh) or the real one. */
function describeBase (image: string): string {
  const label = spawnSync('docker', ['image', 'inspect', '-f', '{{ index .Config.Labels "visitme.standin" }}', image], { env: dockerEnv, encoding: 'utf8' })
  return `${image} (${label.stdout.trim() === '' ? 'the real image' : 'a local stand-in'})`
}

/**
 * The build context a clean clone would give: the files git tracks or would add (not ignored),
 * as they are in the work tree, copied to a new directory. Nothing ignored (node_modules, dist,
 * .env) can reach the build.
 */
export async function cleanContext (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'visitme-context-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  const files = listed.stdout.split('\0').filter((f) => f !== '')
  for (const file of files) {
    await mkdir(dirname(join(dir, file)), { recursive: true })
    await copyFile(join(root, file), join(dir, file)).catch((err: NodeJS.ErrnoException) => {
      // A tracked file deleted in the work tree is not in a clone of it either.
      if (err.code !== 'ENOENT') throw err
    })
  }
  return dir
}

/** A container's log lines, parsed (the service logs JSON; { unparsed } otherwise). */
export function containerLines (name: string): Array<Record<string, unknown>> {
  const logs = spawnSync('docker', ['logs', name], { env: dockerEnv, encoding: 'utf8' })
  return `${logs.stdout}${logs.stderr}`.split('\n').filter((l) => l !== '').map((l) => {
    try { return JSON.parse(l) as Record<string, unknown> } catch { return { unparsed: l } }
  })
}

export function mb (bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`
}
