import t from 'tap'
import type { Test } from 'tap'
import { createCache, RedisStore, type Cache } from '@visitme/memcache'
import { createRedisClient } from '@visitme/memcache'
import { freePort } from '../helpers/ports.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { uniqueName } from '../helpers/services.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { timed, waitFor } from '../helpers/wait.js'

const COMMAND_TIMEOUT_MS = 200
// The command timeout, plus room for a busy machine; far below ioredis' default minute.
const BOUND_MS = COMMAND_TIMEOUT_MS + 300

function cacheOn (t: Test, port: number): Cache {
  const client = createRedisClient({ host: '127.0.0.1', port, commandTimeoutMs: COMMAND_TIMEOUT_MS, connectTimeoutMs: 300 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  return createCache({ store: new RedisStore(client), namespace: uniqueName('faults') })
}

/** Every kind of call, each answered within the bound with memcache's failure value. */
async function failsOpen (t: Test, cache: Cache, label: string): Promise<void> {
  let runs = 0
  const memoized = cache.memoize(async function compute () { runs++; return 'computed' }, { ttl: 60 })
  const calls: Array<[string, () => Promise<unknown>, unknown]> = [
    ['get', () => cache.get('k'), undefined],
    ['getMulti', () => cache.getMulti(['k', 'l']), {}],
    ['set', () => cache.set('k', 1), false],
    ['add', () => cache.add('k', 1), false],
    ['setMulti', () => cache.setMulti({ a: 1 }), ['a']],
    ['incr', () => cache.incr('n', { initialValue: 0 }), undefined],
    ['delete', () => cache.delete('k'), 'failed'],
    ['memoize', () => memoized(), 'computed']
  ]
  for (const [name, call, expected] of calls) {
    const { value, ms } = await timed(call)
    t.same(value, expected, `${label}: ${name} fails open`)
    t.ok(ms < BOUND_MS, `${label}: ${name} answered in ${Math.round(ms)} ms`)
  }
  t.equal(runs, 1, `${label}: the memoized function ran without the cache`)
}

t.test('Redis stopped mid-test, then restarted: calls fail open, then the client comes back by itself', async (t) => {
  const server = await TestRedisServer.start(t)
  const cache = cacheOn(t, server.port)
  await waitFor('the client to connect', () => cache.available)
  t.equal(await cache.set('k', 'before'), true)
  await server.stop()
  await waitFor('the client to notice', () => !cache.store.connected)
  await failsOpen(t, cache, 'stopped')
  await server.restart()
  await waitFor('the client to reconnect and the circuit to close', async () => await cache.set('k', 'after'), 5000)
  t.equal(await cache.get('k'), 'after')
})

t.test('Redis paused: bounded by the command timeout, then the circuit answers at once', async (t) => {
  const server = await TestRedisServer.start(t)
  const cache = cacheOn(t, server.port)
  await waitFor('the client to connect', () => cache.available)
  await cache.set('k', 'v')
  await server.pause(3000)
  await failsOpen(t, cache, 'paused')
  t.equal(cache.available, false, 'the circuit is open')
  const { ms } = await timed(() => cache.get('k'))
  // Far below a command timeout, with room for a busy machine: an open circuit never waits for Redis.
  t.ok(ms < COMMAND_TIMEOUT_MS / 2, `with the circuit open a call costs ${ms.toFixed(1)} ms`)
  await waitFor('the cache to answer again', async () => (await cache.get('k')) === 'v', 8000)
})

t.test('a Redis that accepts connections and never answers', async (t) => {
  const server = await TestRedisServer.start(t)
  const proxy = await TcpProxy.start(t, { host: '127.0.0.1', port: server.port })
  proxy.switch('blackhole')
  const cache = cacheOn(t, Number(proxy.address.split(':')[1]))
  await failsOpen(t, cache, 'blackholed')
  proxy.switch('forward')
  await waitFor('the client to connect through the restored network', async () => await cache.set('k', 'v'), 8000)
})

t.test('nothing listening on the port', async (t) => {
  const cache = cacheOn(t, await freePort())
  await failsOpen(t, cache, 'refused')
})
