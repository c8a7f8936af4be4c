import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { AppDependencies } from '../../src/app.js'
import type { AdminConfig, Config } from '../../src/config.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { redisReady, testRedis } from '../helpers/services.js'

export const TOKEN = 'a-console-token-that-is-long-enough-0123456789'
export const AUDIENCE = '/projects/123456/global/backendServices/987654'

export type Backend = 'memory' | 'redis'

/** The app with the console configured, on memory or on the test Redis, with a logger the test reads. */
export async function adminApp (t: Test, { admin = { token: TOKEN }, backend = 'memory', deps = {}, config: overrides = {} }: { admin?: AdminConfig, backend?: Backend, deps?: AppDependencies, config?: Partial<Config> } = {}): Promise<{ app: FastifyInstance, lines: () => Array<Record<string, unknown>>, config: ReturnType<typeof testConfig> }> {
  const { logger, lines } = capturingLogger()
  const config = testConfig({ admin, ...overrides })
  const app = await buildTestApp(t, config, {
    loggerInstance: logger,
    ...(backend === 'redis' ? { redis: await redisReady(testRedis(t)) } : {}),
    ...deps
  })
  return { app, lines, config }
}

/** The bearer header of the test token. */
export const bearer = { authorization: `Bearer ${TOKEN}` }

/** The audit lines the console wrote. */
export function auditLines (lines: () => Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return lines().flatMap((line) => line.audit === undefined ? [] : [line.audit as Record<string, unknown>])
}
