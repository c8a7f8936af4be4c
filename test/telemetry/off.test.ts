import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startServer } from '../helpers/server-process.js'
import { redisTarget } from '../helpers/services.js'
import { OtlpReceiver } from './otlp-receiver.js'

const recorder = fileURLToPath(new URL('fixtures/record-modules.mjs', import.meta.url))
/** What telemetry loads; the Firestore client loads @opentelemetry/api by itself, which is not telemetry. */
const TELEMETRY_MODULE = /@opentelemetry\/(?!api\/)|@fastify\/otel|\/telemetry\/(sdk|plugin|metrics)\.js/

/** The modules a server loaded while serving a page, with the environment given. */
async function modulesLoaded (t: Test, env: Record<string, string>): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'visitme-modules-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'modules.txt')
  const redis = redisTarget()
  const server = await startServer(t, { ...env, REDISHOST: redis.host, REDISPORT: String(redis.port), RECORD_MODULES: file }, undefined, ['--import', recorder])
  t.equal((await fetch(`http://127.0.0.1:${server.port}/`)).status, 200)
  server.child.kill('SIGTERM')
  t.equal(await server.exited, 0)
  return (await readFile(file, 'utf8')).split('\n').filter((url) => url !== '')
}

t.test('with no OTLP endpoint no OpenTelemetry module is loaded; with one, the SDK is', async (t) => {
  const off = await modulesLoaded(t, {})
  // pino is loaded from node_modules by the built server (not bundled into it), as OpenTelemetry's packages are.
  t.ok(off.some((url) => url.includes('/node_modules/pino/')), 'the recorder sees the modules loaded (pino)')
  t.same(off.filter((url) => TELEMETRY_MODULE.test(url)), [], 'off: nothing of OpenTelemetry loaded')

  const receiver = new OtlpReceiver()
  const url = await receiver.start()
  t.teardown(async () => { await receiver.stop() })
  const on = await modulesLoaded(t, { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })
  t.ok(on.some((url) => url.includes('@opentelemetry/sdk-node')), 'on: the SDK is loaded')
  t.ok(on.some((url) => url.includes('@fastify/otel')), 'on: @fastify/otel is loaded')
})
