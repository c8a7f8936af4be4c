import t, { type Test } from 'tap'
import { evictionHint } from '@visitme/memcache'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

const warning = 'redis may refuse cache writes once full'

async function startLines (t: Test, args: string[]): Promise<() => Array<Record<string, unknown>>> {
  const server = await TestRedisServer.start(t, args)
  const { logger, lines } = capturingLogger()
  await buildTestApp(t, testConfig({ redis: { host: '127.0.0.1', port: server.port, commandTimeoutMs: 500, connectTimeoutMs: 500 } }), { loggerInstance: logger })
  await waitFor('the connection to be logged', () => lines().some((l) => l.message === 'redis connected'))
  // The policy is read after the connection is logged: give it a round trip.
  await new Promise((resolve) => setTimeout(resolve, 200))
  return lines
}

t.test('a memory limit with a volatile eviction policy (Memorystore\'s default) gets one warning with the fix', async (t) => {
  const lines = await startLines(t, ['--maxmemory', '64mb', '--maxmemory-policy', 'volatile-lru'])
  const warned = lines().filter((l) => l.message === warning)
  t.equal(warned.length, 1)
  t.match(warned[0]?.hint, /maxmemory-policy volatile-lru: entries without a TTL are never evicted/)
  t.match(warned[0]?.hint, /gcloud redis instances update INSTANCE --region=REGION --update-redis-config maxmemory-policy=allkeys-lru/)
})

t.test('an allkeys policy, or no memory limit at all, gets none', async (t) => {
  for (const args of [['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru'], ['--maxmemory', '0', '--maxmemory-policy', 'noeviction']]) {
    const lines = await startLines(t, args)
    t.same(lines().filter((l) => l.message === warning), [], args.join(' '))
  }
})

t.test('the hint reads INFO memory as Memorystore answers it', async (t) => {
  const info = (policy: string, limit: number) => `# Memory\r\nused_memory:1000\r\nmaxmemory:${limit}\r\nmaxmemory_human:1M\r\nmaxmemory_policy:${policy}\r\n`
  t.match(evictionHint(info('volatile-lru', 1_000_000), 'x'), /volatile-lru/)
  t.match(evictionHint(info('noeviction', 1_000_000), 'x'), /noeviction/)
  t.equal(evictionHint(info('allkeys-lfu', 1_000_000), 'x'), undefined)
  t.equal(evictionHint(info('volatile-lru', 0), 'x'), undefined)
})
