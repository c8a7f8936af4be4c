import t from 'tap'
import { Redis } from 'ioredis'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { timed, waitFor } from '../helpers/wait.js'

/** How many times the server ran a command, from INFO commandstats. */
async function calls (server: TestRedisServer, command: string): Promise<number> {
  const admin = new Redis({ host: '127.0.0.1', port: server.port })
  try {
    const info = await admin.info('commandstats')
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  } finally {
    admin.disconnect()
  }
}

async function linked (replica: TestRedisServer): Promise<boolean> {
  const admin = new Redis({ host: '127.0.0.1', port: replica.port })
  try {
    return (await admin.info('replication')).includes('master_link_status:up')
  } finally {
    admin.disconnect()
  }
}

t.test('a read replica serves the reads that tolerate lag; everything else, and every write, goes to the primary', async (t) => {
  // Redis waits 5 s by default before a diskless full sync, for more replicas to join: this test has one.
  const primary = await TestRedisServer.start(t, ['--repl-diskless-sync-delay', '0'])
  const replica = await TestRedisServer.start(t, ['--replicaof', '127.0.0.1', String(primary.port)])
  await waitFor('the replica to follow the primary', async () => await linked(replica), 15_000)
  const config = testConfig({
    redis: { host: '127.0.0.1', port: primary.port, commandTimeoutMs: 300, connectTimeoutMs: 500, read: { host: '127.0.0.1', port: replica.port } }
  })
  const app = await buildTestApp(t, config)
  t.ok(app.redisReader, 'REDIS_READ_HOST made a second client')

  // The stats page counts items with SCAN: on the replica, not on the primary.
  const scans = { primary: await calls(primary, 'scan'), replica: await calls(replica, 'scan') }
  t.equal((await app.inject('/stats')).statusCode, 200)
  t.equal(await calls(primary, 'scan'), scans.primary, 'no SCAN on the primary')
  t.ok(await calls(replica, 'scan') > scans.replica, 'the replica counted the items')

  // The guestbook's rendered greetings are read (HGET: a value without its token) from the replica once the primary has them.
  t.equal((await app.inject('/guestbook')).statusCode, 200)
  const reads = { primary: await calls(primary, 'hget'), replica: await calls(replica, 'hget') }
  t.equal((await app.inject('/guestbook')).statusCode, 200)
  t.ok(await calls(replica, 'hget') > reads.replica, 'greetings read from the replica')
  t.equal(await calls(primary, 'hget'), reads.primary, 'and not from the primary')

  // The visits list decides what is stored: always the primary.
  const visitReads = { primary: await calls(primary, 'hmget'), replica: await calls(replica, 'hmget') }
  await app.inject({ url: '/', headers: { 'user-agent': 'reader' } })
  t.ok(await calls(primary, 'hmget') > visitReads.primary, 'the visits list is read from the primary')
  t.equal(await calls(replica, 'hmget'), visitReads.replica)
  t.equal((await app.inject({ url: '/', headers: { 'user-agent': 'reader' } })).headers['x-cache'], 'hit')

  // A cas token (HMGET: the value and its token) must be the primary's.
  const cache = app.cache.namespaced(`${config.cacheNamespace}/check`, { reads: 'replica' })
  await cache.set('k', 1)
  const tokenReads = await calls(primary, 'hmget')
  const entry = await cache.gets<number>('k')
  t.equal(await calls(primary, 'hmget'), tokenReads + 1, 'gets() reads the primary')
  t.equal(await cache.cas('k', 2, entry!.casToken), true)

  // The replica goes away: the same reads fall back to the primary, at once.
  await replica.stop()
  for (const url of ['/guestbook', '/stats']) {
    const { value: page, ms } = await timed(async () => await app.inject(url))
    t.equal(page.statusCode, 200, `${url} with the replica down`)
    t.ok(ms < 1000, `${url} in ${Math.round(ms)} ms`)
  }
  t.equal(await cache.get('k'), 2, 'a value is still found, on the primary')
})
