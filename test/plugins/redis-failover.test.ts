import t from 'tap'
import { Redis } from 'ioredis'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

t.test('failover: after READONLY the client reconnects, and writes resume within seconds with no error shown', async (t) => {
  const primary = await TestRedisServer.start(t)
  const other = await TestRedisServer.start(t)
  const { logger } = capturingLogger()
  const app = await buildTestApp(t, testConfig({ redis: { host: '127.0.0.1', port: primary.port, commandTimeoutMs: 300, connectTimeoutMs: 500 } }), { loggerInstance: logger })
  const admin = new Redis({ host: '127.0.0.1', port: primary.port })
  t.teardown(() => { admin.disconnect() })
  const visit = async (ua: string) => await app.inject({ url: '/', headers: { 'user-agent': ua } })

  t.equal((await visit('before')).headers['x-cache'], 'miss')
  const connectionBefore = await app.redis.client('ID')

  // The node behind the address is demoted: it now follows another and refuses writes.
  await admin.call('REPLICAOF', '127.0.0.1', String(other.port))
  const during = await visit('during')
  t.equal(during.statusCode, 200, 'no error is shown')
  t.not(during.headers['x-cache'], 'hit')

  // It is promoted again, as a failover's new primary would be.
  await admin.call('REPLICAOF', 'NO', 'ONE')
  const started = Date.now()
  await waitFor('writes to resume', async () => (await visit('after')).headers['x-cache'] === 'hit', 10_000)
  t.ok(Date.now() - started < 5000, `writes resumed ${Date.now() - started} ms after the promotion`)
  t.not(await app.redis.client('ID'), connectionBefore, 'the READONLY answer made the client reconnect')
})
