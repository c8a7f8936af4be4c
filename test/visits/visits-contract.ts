import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import type { Config } from '../../src/config.js'
import { recentVisitsKey, visitsNamespace } from '../../src/visits/cache-keys.js'
import { visitId } from '../../src/visits/recent-visits.js'
import { testConfig } from '../helpers/app.js'
import type { CountingRepository } from './counting-repository.js'

export interface VisitsSetup {
  app: FastifyInstance
  repository: CountingRepository
  /** Milliseconds the cached list still has to live, read from the store itself. */
  cachedListTtlMs: (config: Config) => Promise<number>
}

type MakeSetup = (t: Test, config: Config) => Promise<VisitsSetup>

const json = { accept: 'application/json' }

function visit (app: FastifyInstance, userAgent: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url: '/', headers: { 'user-agent': userAgent, ...headers } })
}

const listKey = (config: Config) => recentVisitsKey(config.visits.collection)
/** The cache of the visits list, as the app names it. */
export const visitsCache = (app: FastifyInstance, config: Config) => app.cache.namespaced(visitsNamespace(config.cacheNamespace))

/** Announces a change of the list, and gives every in-process copy the 50 ms it may take to hear it. */
async function announced (app: FastifyInstance, config: Config): Promise<void> {
  await visitsCache(app, config).announce(listKey(config))
  await new Promise((resolve) => setTimeout(resolve, 50))
}

function visitors (response: LightMyRequestResponse): string[] {
  return (response.json() as { visits: Array<{ visitor: string }> }).visits.map((v) => v.visitor)
}

/** The visits page's behaviour, the same whatever stores sit behind it. */
export function visitsContract (t: Test, name: string, makeSetup: MakeSetup): void {
  t.test(`${name}: visits page`, async (t) => {
    t.test('first visit is a miss that stores the visit; a refresh is a hit that stores nothing', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)

      const first = await visit(app, 'Browser A', json)
      t.equal(first.statusCode, 200)
      t.equal(first.headers['x-cache'], 'miss')
      t.same(visitors(first), ['127.0.0.0: Browser A'], 'the visitor is the truncated IP and the user agent')

      const again = await visit(app, 'Browser A', json)
      t.equal(again.headers['x-cache'], 'hit')
      t.same(visitors(again), ['127.0.0.0: Browser A'])
      t.equal((await repository.latest(100)).length, 1, 'a refresh stores no visit')
    })

    t.test('a new visitor stores a visit and sees it first', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      const before = { ...repository.calls }
      const b = await visit(app, 'Browser B', json)
      t.equal(b.headers['x-cache'], 'update', 'stored, and added to the cached list')
      t.same(visitors(b), ['127.0.0.0: Browser B', '127.0.0.0: Browser A'])
      t.same(repository.calls, { add: before.add + 1, latest: before.latest }, 'one write, no read: the cached list is current')
      const a = await visit(app, 'Browser A', json)
      t.equal(a.headers['x-cache'], 'update', 'A is no longer the newest visitor: a new visit')
      t.same(visitors(a), ['127.0.0.0: Browser A', '127.0.0.0: Browser B', '127.0.0.0: Browser A'])
      t.equal((await repository.latest(100)).length, 3)
    })

    t.test('the list is cached for the configured TTL', async (t) => {
      const config = testConfig({ visits: { ...testConfig().visits, cacheTtlSeconds: 3600 } })
      const { app, cachedListTtlMs } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      const ttl = await cachedListTtlMs(config)
      t.ok(ttl > 3590_000 && ttl <= 3600_000, `cached for an hour (${ttl} ms left)`)
    })

    t.test('after the TTL the same visitor is a new visit, as in the App Engine sample', async (t) => {
      const config = testConfig({ visits: { ...testConfig().visits, cacheTtlSeconds: 1 } })
      const { app, repository } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      t.equal((await visit(app, 'Browser A')).headers['x-cache'], 'hit')
      await new Promise((resolve) => setTimeout(resolve, 1100))
      t.equal((await visit(app, 'Browser A')).headers['x-cache'], 'miss')
      t.equal((await repository.latest(100)).length, 2)
    })

    t.test('a lost cache entry never turns a refresh into a new visit', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      t.equal(await visitsCache(app, config).delete(listKey(config)), 'deleted')
      // As an eviction would, and said out loud, so that no in-process copy outlives it.
      await announced(app, config)
      const refresh = await visit(app, 'Browser A', json)
      t.equal(refresh.headers['x-cache'], 'miss', 'the list is read again and cached')
      t.equal((await repository.latest(100)).length, 1, 'no second visit')
      t.equal((await visit(app, 'Browser A')).headers['x-cache'], 'hit')
    })

    t.test('only the 10 most recent visits are shown, newest first', async (t) => {
      const config = testConfig()
      const { app } = await makeSetup(t, config)
      for (let i = 1; i <= 12; i++) await visit(app, `Browser ${i}`)
      const page = await visit(app, 'Browser 12', json)
      t.equal(page.headers['x-cache'], 'hit')
      t.same(visitors(page), Array.from({ length: 10 }, (_, i) => `127.0.0.0: Browser ${12 - i}`))
    })

    t.test('the limit is configurable', async (t) => {
      const config = testConfig({ visits: { ...testConfig().visits, limit: 3 } })
      const { app } = await makeSetup(t, config)
      for (let i = 1; i <= 5; i++) await visit(app, `Browser ${i}`)
      const page = await visit(app, 'Browser 5')
      t.match(page.body, /<h1>Last 3 visits<\/h1>/)
      t.equal(page.body.match(/<li>/g)?.length, 3)
    })

    t.test('the HTML page lists each visit with its time, and escapes user agents', async (t) => {
      const config = testConfig()
      const { app } = await makeSetup(t, config)
      const attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
      await visit(app, 'Plain Browser')
      const page = await visit(app, attack)
      t.equal(page.statusCode, 200)
      t.match(page.headers['content-type'], /^text\/html/)
      t.match(page.body, /<title>VisitMe example<\/title>/)
      t.match(page.body, /<h1>Last 10 visits<\/h1>/)
      t.equal(page.body.match(/<li>/g)?.length, 2)
      t.notMatch(page.body, /<script>alert/, 'no script tag from the user agent')
      t.notMatch(page.body, /<img src=x/, 'no img tag from the user agent')
      t.match(page.body, '127.0.0.0: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;')
      t.match(page.body, /<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z">/)
    })

    t.test('Accept: application/json gets the visits as JSON', async (t) => {
      const config = testConfig()
      const { app } = await makeSetup(t, config)
      const before = Date.now()
      const response = await visit(app, 'JSON client', json)
      t.match(response.headers['content-type'], /^application\/json/)
      t.match(response.headers.vary, /Accept/)
      t.equal(response.headers['cache-control'], 'no-store')
      const body = response.json() as { visits: Array<{ visitor: string, timestamp: string }> }
      t.same(Object.keys(body), ['visits'])
      t.same(Object.keys(body.visits[0]!), ['visitor', 'timestamp'])
      t.match(body.visits[0]!.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      const at = Date.parse(body.visits[0]!.timestamp)
      t.ok(at >= before - 5 && at <= Date.now() + 5, 'the timestamp is the time of the visit')
      t.match((await visit(app, 'JSON client', { accept: 'text/html,*/*;q=0.8' })).headers['content-type'], /^text\/html/)
    })

    t.test('concurrent first requests by one visitor share one repository round', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)
      const responses = await Promise.all(Array.from({ length: 5 }, () => visit(app, 'Double clicker')))
      t.same(responses.map((r) => r.statusCode), [200, 200, 200, 200, 200])
      t.same(repository.calls, { add: 1, latest: 1 }, 'one read and one write for all five')
      t.equal((await repository.latest(100)).length, 1)
    })

    t.test('a hit costs no repository call', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      const before = { ...repository.calls }
      for (let i = 0; i < 3; i++) t.equal((await visit(app, 'Browser A')).headers['x-cache'], 'hit')
      t.same(repository.calls, before)
    })

    t.test('a visit another instance stored but could not add to the list is stored once', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      const [a] = await repository.inner.latest(1)
      // Another instance stored B after A, and Redis failed it before the list was updated.
      await repository.inner.add(visitId('127.0.0.0: Browser B', a), { visitor: '127.0.0.0: Browser B', timestamp: new Date(a!.timestamp.getTime() + 1) })
      const b = await visit(app, 'Browser B', json)
      t.equal(b.headers['x-cache'], 'update')
      t.same(visitors(b), ['127.0.0.0: Browser B', '127.0.0.0: Browser A'])
      t.equal((await repository.latest(100)).length, 2, 'the same visit (same predecessor, same visitor): one document')
      const again = await visit(app, 'Browser A', json)
      t.equal(again.headers['x-cache'], 'update')
      t.equal((await repository.latest(100)).length, 3, 'A after B is a new visit')
    })

    t.test('a refresh re-cached from the repository keeps the original expiry', async (t) => {
      const config = testConfig()
      const { app, cachedListTtlMs } = await makeSetup(t, config)
      await visit(app, 'Browser A')
      await new Promise((resolve) => setTimeout(resolve, 1100))
      await visitsCache(app, config).delete(listKey(config))
      await announced(app, config)
      t.equal((await visit(app, 'Browser A')).headers['x-cache'], 'miss')
      const ttl = await cachedListTtlMs(config)
      t.ok(ttl > 3_590_000 && ttl <= 3_599_000, `the list expires an hour after the visit, not after the refresh (${ttl} ms left)`)
    })

    t.test('a cached value of another shape is ignored and replaced', async (t) => {
      const config = testConfig()
      const { app } = await makeSetup(t, config)
      await visitsCache(app, config).set(listKey(config), [{ visitor: '127.0.0.0: Browser A', timestamp: 'not a date' }])
      const page = await visit(app, 'Browser A')
      t.equal(page.statusCode, 200)
      t.equal(page.headers['x-cache'], 'miss')
      t.equal((await visit(app, 'Browser A')).headers['x-cache'], 'hit')
    })

    t.test('HEAD / is refused and records nothing', async (t) => {
      const config = testConfig()
      const { app, repository } = await makeSetup(t, config)
      const head = await app.inject({ method: 'HEAD', url: '/' })
      t.equal(head.statusCode, 405)
      t.equal(head.headers.allow, 'GET')
      t.same(repository.calls, { add: 0, latest: 0 })
    })
  })
}
