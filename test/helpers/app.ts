import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import type { Test } from 'tap'
import { buildApp, type AppDependencies } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { uniqueName } from './services.js'

export function testConfig (overrides: Partial<Config> = {}): Config {
  return {
    port: 0,
    host: '127.0.0.1',
    logLevel: 'silent',
    cacheNamespace: uniqueName('app'),
    visits: { collection: uniqueName('visits'), limit: 10, shards: 1, cacheTtlSeconds: 3600, ipMode: 'truncated' },
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
