import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../src/config.js'
import { BoundedCalls } from '../../src/plugins/bounded-calls.js'
import { FirestoreTasksRepository } from '../../src/tasks/firestore-repository.js'
import { MemoryTasksRepository } from '../../src/tasks/memory-repository.js'
import type { TasksRepository } from '../../src/tasks/repository.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { FormClient } from '../helpers/form-client.js'
import { freePort } from '../helpers/ports.js'
import { TestRedisServer } from '../helpers/redis-server.js'
import { redisReady, testDatastore, testFirestore, testRedis, uniqueName } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'
import { DatastoreTasksRepository } from '../../src/tasks/datastore-repository.js'

type Setup = (t: Test, config?: Config) => Promise<{ app: FastifyInstance, tasks: TasksRepository }>

const names = (body: string) => [...body.matchAll(/<span class="name">([^<]*)<\/span>/g)].map((m) => m[1])

function contract (t: Test, label: string, setup: Setup): void {
  t.test(`task list (${label})`, async (t) => {
    t.test('add and delete; the list is never stale after a change', async (t) => {
      const { app } = await setup(t)
      const browser = new FormClient(app)
      const empty = await browser.get('/tasks')
      t.equal(empty.statusCode, 200)
      t.match(empty.body, /No tasks yet\./)
      t.equal((await browser.get('/tasks')).headers['x-cache'], 'hit', 'the whole view is cached')

      const added = await browser.post('/tasks', { name: 'Write <tests>' })
      t.equal(added.statusCode, 303)
      t.equal(added.headers.location, '/tasks')
      const list = await browser.get('/tasks')
      t.equal(list.headers['x-cache'], 'miss', 'invalidated by the change')
      t.same(names(list.body), ['Write &lt;tests&gt;'])
      await browser.post('/tasks', { name: 'Ship it' })
      t.same(names((await browser.get('/tasks')).body), ['Write &lt;tests&gt;', 'Ship it'])

      const id = /action="\/tasks\/([^/]+)\/delete"/.exec(list.body)?.[1]
      t.ok(id)
      t.equal((await browser.post(`/tasks/${id!}/delete`, {})).statusCode, 303)
      t.same(names((await browser.get('/tasks')).body), ['Ship it'], 'gone at once')
    })

    t.test('an empty name: the message shows once, after the redirect', async (t) => {
      const { app } = await setup(t)
      const browser = new FormClient(app)
      await browser.get('/tasks')
      t.notOk(browser.cookieNames().includes('sid'), 'no session for a visitor with nothing to keep')
      const refused = await browser.post('/tasks', { name: '   ' })
      t.equal(refused.statusCode, 303)
      t.ok(browser.cookieNames().includes('sid'), 'the message is kept in a session')
      const shown = await browser.get('/tasks')
      t.match(shown.body, /<p class="flash" role="alert">Task name is required\.<\/p>/)
      t.not(shown.headers['x-cache'], 'hit', 'a page with a message is not served from the cache')
      t.notMatch((await browser.get('/tasks')).body, /Task name is required/, 'and shows only once')
      t.notMatch((await new FormClient(app).get('/tasks')).body, /Task name is required/, 'and never to anyone else')
    })

    t.test('no cached view or fragment holds a user\'s token', async (t) => {
      const { app } = await setup(t)
      const browser = new FormClient(app)
      await browser.get('/tasks')
      await browser.post('/tasks', { name: 'one' })
      const page = await browser.get('/tasks')
      const tokens = [...page.body.matchAll(/name="_csrf" value="([^"]+)"/g)].map((m) => m[1]!)
      t.equal(tokens.length, 2, 'the add form and the row\'s delete form')
      t.ok(tokens.every((token) => token !== '<csrf-token>' && token.length > 10), 'real tokens in the page')
      const cached = await app.routeCache.lookup('tasks', ['tasks'])
      t.ok(cached.hit, 'the view is cached')
      t.match(String(cached.hit!.body), 'value="<csrf-token>"')
      t.notMatch(String(cached.hit!.body), tokens[0]!)
      const id = /action="\/tasks\/([^/]+)\/delete"/.exec(page.body)![1]!
      const fragment = await app.fragments.get<string>(`task:${id}`)
      t.match(fragment, 'value="<csrf-token>"', 'the row fragment is cached with the slot, not the token')
      t.notMatch(fragment, tokens[1]!)
    })

    t.test('a form open across a restart: the list again, with a fresh token and the name typed', async (t) => {
      const { app, tasks } = await setup(t)
      // Another process's cookie and token: without SESSION_SECRET each process signs with a key of its own.
      const before = new FormClient(await buildTestApp(t, testConfig(), { tasks: new MemoryTasksRepository() }))
      const token = /name="_csrf" value="([^"]+)"/.exec((await before.get('/tasks')).body)![1]!
      const post = async (url: string, headers: Record<string, string>) => await app.inject({
        method: 'POST',
        url,
        headers: { cookie: before.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: new URLSearchParams({ name: 'Typed <task>', _csrf: token }).toString()
      })
      const ours = await post('/tasks', { 'sec-fetch-site': 'same-origin' })
      t.equal(ours.statusCode, 403)
      t.equal(ours.headers['cache-control'], 'private, no-store')
      t.match(ours.body, /<p class="flash" role="alert">The form had expired, so the task was not added\. Here it is again: please add it once more\.<\/p>/)
      t.match(ours.body, '<input name="name" maxlength="200" value="Typed &lt;task&gt;">')
      t.same(await tasks.all(), [], 'nothing added')
      const fresh = /name="_csrf" value="([^"]+)"/.exec(ours.body)![1]!
      t.not(fresh, '<csrf-token>', 'a real token in the form')
      const cookie = ours.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
      const again = await app.inject({
        method: 'POST',
        url: '/tasks',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ name: 'Typed <task>', _csrf: fresh }).toString()
      })
      t.equal(again.statusCode, 303, 'the form sent again goes through')
      t.same((await tasks.all()).map((task) => task.name), ['Typed <task>'])

      const foreign = await post('/tasks', { 'sec-fetch-site': 'cross-site' })
      t.match(foreign.body, /The form had expired or was not sent from this page, so the task was not added\./)
      t.match(foreign.body, '<input name="name" maxlength="200" value="">', 'another site\'s text is not put in our form')

      const id = (await tasks.all())[0]!.id
      const deleted = await post(`/tasks/${id}/delete`, { 'sec-fetch-site': 'same-origin' })
      t.equal(deleted.statusCode, 403)
      t.match(deleted.body, /The form had expired, so nothing was deleted\. Please try again\./)
      t.equal((await tasks.all()).length, 1, 'nothing deleted')
      const fragment = await app.fragments.get<string>(`task:${id}`)
      t.match(fragment, 'value="<csrf-token>"', 'the row cached meanwhile holds the slot, not a token')
    })

    t.test('forms are protected: no token, no task', async (t) => {
      const { app, tasks } = await setup(t)
      const forged = await app.inject({ method: 'POST', url: '/tasks', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=forged' })
      t.equal(forged.statusCode, 403)
      t.same(await tasks.all(), [])
    })
  })
}

contract(t, 'embedded', async (t) => {
  const tasks = new MemoryTasksRepository()
  return { app: await buildTestApp(t, testConfig(), { tasks }), tasks }
})

contract(t, 'Redis and the Firestore emulator', async (t, config = testConfig()) => {
  const tasks = new FirestoreTasksRepository(await testFirestore(t), { collection: uniqueName('tasks'), calls: new BoundedCalls({ timeoutMs: 5000 }) })
  return { app: await buildTestApp(t, config, { tasks, redis: await redisReady(testRedis(t)) }), tasks }
})

contract(t, 'Redis and the Datastore-mode emulator', async (t, config = testConfig()) => {
  const tasks = new DatastoreTasksRepository(await testDatastore(t), { calls: new BoundedCalls({ timeoutMs: 5000 }) })
  return { app: await buildTestApp(t, config, { tasks, redis: await redisReady(testRedis(t)) }), tasks }
})

t.test('two instances sharing Redis: a change on one is never stale on the other', async (t) => {
  const tasks = new MemoryTasksRepository() // one database behind both instances
  const config = testConfig()
  const a = new FormClient(await buildTestApp(t, config, { tasks, redis: await redisReady(testRedis(t)) }))
  const b = new FormClient(await buildTestApp(t, config, { tasks, redis: await redisReady(testRedis(t)) }))
  await b.get('/tasks')
  t.equal((await b.get('/tasks')).headers['x-cache'], 'hit', 'instance B has the list cached')
  await a.get('/tasks')
  await a.post('/tasks', { name: 'added on A' })
  const seen = await b.get('/tasks')
  t.same(names(seen.body), ['added on A'])
})

t.test('cookies: HttpOnly, SameSite=Lax, and Secure behind Cloud Run\'s HTTPS', async (t) => {
  const app = await buildTestApp(t, testConfig({ trustProxyHops: 1 }), { tasks: new MemoryTasksRepository() })
  const cookiesOf = async (proto: string) => {
    const browser = new FormClient(app)
    await browser.get('/tasks', { 'x-forwarded-proto': proto })
    const page = await app.inject({ url: '/tasks', headers: { 'x-forwarded-proto': proto } })
    const refused = await app.inject({
      method: 'POST',
      url: '/tasks',
      headers: { 'x-forwarded-proto': proto, cookie: browser.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      payload: `name=&_csrf=${encodeURIComponent(/name="_csrf" value="([^"]+)"/.exec((await browser.get('/tasks', { 'x-forwarded-proto': proto })).body)![1]!)}`
    })
    return [...[page.headers['set-cookie'] ?? []].flat(), ...[refused.headers['set-cookie'] ?? []].flat()]
  }
  const https = await cookiesOf('https')
  const session = https.find((c) => c.startsWith('sid='))
  t.ok(session, 'the flash message opened a session')
  t.match(session, /HttpOnly/)
  t.match(session, /SameSite=Lax/)
  t.match(session, /Secure/)
  t.match(https.find((c) => c.startsWith('_csrf=')), /HttpOnly.*SameSite=Lax|SameSite=Lax.*HttpOnly/)
  t.ok(https.filter((c) => /^(sid|_csrf)=/.test(c)).every((c) => /Secure/.test(c)), 'every cookie is Secure over HTTPS')
  t.notOk((await cookiesOf('http')).some((c) => /Secure/.test(c)), 'and none over plain HTTP (local development)')
})

t.test('with Redis down the task list still works', async (t) => {
  const tasks = new MemoryTasksRepository()
  const app = await buildTestApp(t, testConfig({ redis: { host: '127.0.0.1', port: await freePort(), commandTimeoutMs: 200, connectTimeoutMs: 200 } }), { tasks })
  const browser = new FormClient(app)
  t.equal((await browser.get('/tasks')).statusCode, 200)
  t.equal((await browser.post('/tasks', { name: 'offline' })).statusCode, 303)
  t.same(names((await browser.get('/tasks')).body), ['offline'])
  t.equal((await browser.post('/tasks', { name: '' })).statusCode, 303, 'the flash message is lost, the page is not')
  t.equal((await browser.get('/tasks')).statusCode, 200)
})

t.test('an invalidation Redis could not take is retried until it can, for every instance', async (t) => {
  const server = await TestRedisServer.start(t)
  const tasks = new MemoryTasksRepository()
  const config = testConfig({ redis: { host: '127.0.0.1', port: server.port, commandTimeoutMs: 200, connectTimeoutMs: 500 } })
  const a = new FormClient(await buildTestApp(t, config, { tasks }))
  const b = new FormClient(await buildTestApp(t, { ...config }, { tasks }))
  await b.get('/tasks')
  t.equal((await b.get('/tasks')).headers['x-cache'], 'hit', 'B has the empty list cached')
  await a.get('/tasks')
  await server.pause(1500)
  t.equal((await a.post('/tasks', { name: 'added during the pause' })).statusCode, 303, 'the change is stored; its invalidation is not')
  // B serves nothing stale once Redis answers again: A's retry has run by then, with no request on A.
  await waitFor('B to show the change', async () => names((await b.get('/tasks')).body).includes('added during the pause'), 8000)
  t.pass('the change reached the other instance')
})
