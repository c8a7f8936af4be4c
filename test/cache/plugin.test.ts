import Fastify, { type FastifyInstance } from 'fastify'
import view from '@fastify/view'
import { Eta } from 'eta'
import t from 'tap'
import type { Test } from 'tap'
import { fragmentRenderer, MemoryStore, RedisStore, type Store } from '@visitme/memcache'
import cachePlugin from '@visitme/memcache/fastify'
import { redisReady, testRedis, uniqueName } from '../helpers/services.js'

const stores: Record<string, (t: Test) => Promise<Store>> = {
  memory: async () => new MemoryStore(),
  redis: async (t) => new RedisStore(await redisReady(testRedis(t)))
}

/** A small app with cached routes; `runs` counts handler executions per route. */
async function appWith (t: Test, store: Store): Promise<{ app: FastifyInstance, runs: Record<string, number> }> {
  const app = Fastify()
  await app.register(cachePlugin, { store, namespace: uniqueName('app') })
  const runs: Record<string, number> = {}
  const count = (name: string) => { runs[name] = (runs[name] ?? 0) + 1 }
  app.get('/page', { config: { cache: { ttl: 60, tags: ['pages'] } } }, async (request, reply) => {
    count('page')
    reply.header('x-custom', 'kept')
    if (request.headers.accept === 'application/json') return { page: runs.page }
    return reply.type('text/html').send(`<p>page ${runs.page}</p>`)
  })
  app.post('/page', { config: { cache: { ttl: 60 } } }, async () => { count('post'); return { posted: true } })
  app.get('/missing', { config: { cache: { ttl: 60 } } }, async (_request, reply) => { count('missing'); return reply.code(404).send({ missing: true }) })
  app.get('/cookie', { config: { cache: { ttl: 60 } } }, async (_request, reply) => { count('cookie'); return reply.header('set-cookie', 'session=1').send('with cookie') })
  app.get('/varies', { config: { cache: { ttl: 60 } } }, async (_request, reply) => { count('varies'); return reply.header('vary', 'Cookie').send('per user') })
  app.get('/private', { config: { cache: { ttl: 60 } } }, async (_request, reply) => { count('private'); return reply.header('cache-control', 'private').send('mine') })
  app.get('/user', { config: { cache: { ttl: 60, key: (request) => `user:${String(request.headers.authorization)}` } } }, async (request) => {
    count('user')
    return { user: request.headers.authorization }
  })
  app.get('/sometimes', { config: { cache: { ttl: 60, unless: (request) => 'fresh' in (request.query as object) } } }, async () => { count('sometimes'); return { n: runs.sometimes } })
  app.get('/tasks/:id', { config: { cache: { ttl: 60, tags: (request) => ['tasks', `task:${(request.params as { id: string }).id}`] } } }, async (request) => {
    count(`task ${(request.params as { id: string }).id}`)
    return { id: (request.params as { id: string }).id }
  })
  app.get('/plain', async () => { count('plain'); return 'not cached' })
  app.get('/huge', { config: { cache: { ttl: 60 } } }, async () => { count('huge'); return 'x'.repeat(1_100_000) })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, runs }
}

for (const [name, make] of Object.entries(stores)) {
  t.test(`route caching on the ${name} store`, async (t) => {
    t.test('a successful GET is cached with its status, headers and body', async (t) => {
      const { app, runs } = await appWith(t, await make(t))
      const first = await app.inject('/page')
      const second = await app.inject('/page')
      t.equal(first.headers['x-cache'], 'miss')
      t.equal(second.headers['x-cache'], 'hit')
      t.equal(runs.page, 1, 'the handler ran once')
      t.equal(second.statusCode, 200)
      t.equal(second.body, '<p>page 1</p>')
      t.equal(second.headers['content-type'], first.headers['content-type'])
      t.equal(second.headers['x-custom'], 'kept')
      const json = await app.inject({ url: '/page', headers: { accept: 'application/json' } })
      t.same(json.json(), { page: 2 }, 'another Accept is another entry')
      t.equal((await app.inject('/plain')).headers['x-cache'], undefined, 'routes without config are left alone')
    })

    t.test('what is never cached: POSTs, failures, cookies, personal and private responses', async (t) => {
      const { app, runs } = await appWith(t, await make(t))
      for (let i = 0; i < 2; i++) {
        await app.inject({ method: 'POST', url: '/page' })
        await app.inject('/missing')
        await app.inject('/cookie')
        await app.inject('/varies')
        await app.inject('/private')
      }
      t.same(runs, { post: 2, missing: 2, cookie: 2, varies: 2, private: 2 })
      t.equal((await app.inject('/cookie')).headers['x-cache'], 'miss')
    })

    t.test('an Authorization header skips the cache unless the route\'s key tells users apart', async (t) => {
      const { app, runs } = await appWith(t, await make(t))
      await app.inject({ url: '/page', headers: { authorization: 'Bearer a' } })
      await app.inject({ url: '/page', headers: { authorization: 'Bearer a' } })
      t.equal(runs.page, 2)
      const a1 = await app.inject({ url: '/user', headers: { authorization: 'Bearer a' } })
      const b1 = await app.inject({ url: '/user', headers: { authorization: 'Bearer b' } })
      const a2 = await app.inject({ url: '/user', headers: { authorization: 'Bearer a' } })
      t.same([a1.json(), b1.json(), a2.json()], [{ user: 'Bearer a' }, { user: 'Bearer b' }, { user: 'Bearer a' }], 'no user sees another\'s response')
      t.equal(a2.headers['x-cache'], 'hit')
      t.equal(runs.user, 2)
    })

    t.test('a page too large for the cache is served, not stored; bookkeeping reads are no hits or misses', async (t) => {
      const { app, runs } = await appWith(t, await make(t))
      const pages = [await app.inject('/huge'), await app.inject('/huge')]
      t.same(pages.map((p) => [p.statusCode, p.body.length, p.headers['x-cache']]), [[200, 1_100_000, 'miss'], [200, 1_100_000, 'miss']])
      t.equal(runs.huge, 2)
      await app.inject('/page')
      await app.inject('/page')
      const routes = app.routeCache.cache
      t.match(routes.counters(), { misses: 3, hits: 1 }, 'one read per request: the tag counter read along is not counted')
    })

    t.test('unless skips the cache', async (t) => {
      const { app, runs } = await appWith(t, await make(t))
      await app.inject('/sometimes')
      const fresh = await app.inject('/sometimes?fresh')
      t.equal(fresh.headers['x-cache'], undefined)
      t.equal((await app.inject('/sometimes')).headers['x-cache'], 'hit')
      t.equal(runs.sometimes, 2)
    })

    t.test('invalidation by key and by tag', async (t) => {
      const { app, runs } = await appWith(t, await make(t))
      await app.inject('/page')
      t.equal(await app.routeCache.invalidate('/page '), true)
      t.equal((await app.inject('/page')).headers['x-cache'], 'miss', 'the key is gone')

      await app.inject('/tasks/1')
      await app.inject('/tasks/2')
      t.equal(await app.routeCache.invalidateTags('task:1'), true)
      t.equal((await app.inject('/tasks/1')).headers['x-cache'], 'miss')
      t.equal((await app.inject('/tasks/2')).headers['x-cache'], 'hit', 'another tag is untouched')
      await app.routeCache.invalidateTags('tasks')
      t.equal((await app.inject('/tasks/2')).headers['x-cache'], 'miss', 'a shared tag reaches every response that has it')
      t.equal((await app.inject('/page')).headers['x-cache'], 'hit')
      t.same(runs, { page: 2, 'task 1': 2, 'task 2': 2 })
    })
  })
}

t.test('with the cache down, cached routes still answer', async (t) => {
  const store = new MemoryStore()
  Object.defineProperty(store, 'connected', { value: false })
  const { app, runs } = await appWith(t, store)
  const responses = [await app.inject('/page'), await app.inject('/page')]
  t.same(responses.map((r) => [r.statusCode, r.headers['x-cache']]), [[200, 'miss'], [200, 'miss']])
  t.equal(runs.page, 2)
})

t.test('template fragments are rendered once and served from the cache until deleted', async (t) => {
  const store = new MemoryStore()
  const app = Fastify()
  await app.register(cachePlugin, { store })
  const fragments = app.cache.namespaced('fragments')
  let renders = 0
  const fragment = fragmentRenderer(fragments)
  const root = t.testdir({ 'list.eta': '<ul><%~ await it.fragment("rows", { ttl: 60 }, () => it.rows()) %></ul>' })
  await app.register(view, { engine: { eta: new Eta({ views: root }) }, root, defaultContext: { fragment }, options: { async: true } })
  const render = async () => await app.view('list', { rows: () => { renders++; return '<li>row &lt;1&gt;</li>' } })
  t.teardown(async () => { await app.close() })
  t.equal(await render(), '<ul><li>row &lt;1&gt;</li></ul>')
  t.equal(await render(), '<ul><li>row &lt;1&gt;</li></ul>')
  t.equal(renders, 1)
  await fragments.delete('rows')
  await render()
  t.equal(renders, 2, 'rendered again once its key is deleted')

  const problems: string[] = []
  const big = fragmentRenderer(fragments, (_err, key) => problems.push(key))
  t.equal((await big('huge', { ttl: 60 }, () => 'x'.repeat(1_100_000))).length, 1_100_000, 'a block too large to cache is still rendered')
  t.same(problems, ['huge'])
})
