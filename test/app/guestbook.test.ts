import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { FirestoreGreetingsRepository, MemoryGreetingsRepository, type GreetingsRepository } from '../../src/guestbook/greetings.js'
import { BoundedCalls } from '../../src/lib/bounded-calls.js'
import { buildTestApp, capturingLogger, redisReady, testConfig, testFirestore, testRedis, uniqueName } from '../helper.js'

type Setup = (t: Test) => Promise<{ app: FastifyInstance, greetings: GreetingsRepository }>

/** A browser's round trip: the page's token and the cookie it came with. */
async function sign (app: FastifyInstance, book: string, fields: Record<string, string>): Promise<LightMyRequestResponse> {
  const page = await app.inject(`/guestbook?guestbook_name=${encodeURIComponent(book)}`)
  const token = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1] ?? ''
  const cookies = page.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
  return await app.inject({
    method: 'POST',
    url: `/sign?guestbook_name=${encodeURIComponent(book)}`,
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ ...fields, _csrf: token }).toString()
  })
}

function contract (t: Test, name: string, setup: Setup): void {
  t.test(`guestbook (${name})`, async (t) => {
    t.test('an empty book, its forms, and the cache stats', async (t) => {
      const { app } = await setup(t)
      const page = await app.inject('/guestbook')
      t.equal(page.statusCode, 200)
      t.match(page.body, /<title>Guestbook<\/title>/)
      t.match(page.body, /<h1>Guestbook: default_guestbook<\/h1>/)
      t.match(page.body, /<input type="hidden" name="_csrf" value="[^"]+">/)
      t.match(page.body, /Cache hits: \d+ · Cache misses: \d+/)
      t.notMatch(page.body, /class="greeting"/)
    })

    t.test('a greeting appears right after signing, escaped, in its own book only', async (t) => {
      const { app } = await setup(t)
      const book = uniqueName('book <b>')
      await app.inject(`/guestbook?guestbook_name=${encodeURIComponent(book)}`) // cache the empty book
      const signed = await sign(app, book, { content: 'Hello <script>alert(1)</script>', author: 'Ann <i>' })
      t.equal(signed.statusCode, 303)
      t.equal(signed.headers.location, `/guestbook?${new URLSearchParams({ guestbook_name: book }).toString()}`)
      const page = await app.inject(signed.headers.location as string)
      t.match(page.body, '<b>Ann &lt;i&gt;</b> wrote:')
      t.match(page.body, 'Hello &lt;script&gt;alert(1)&lt;/script&gt;')
      t.notMatch(page.body, /<script>alert/)
      t.match(page.body, `Guestbook: ${book.replace('<b>', '&lt;b&gt;')}`)
      await sign(app, book, { content: 'No name' })
      t.match((await app.inject(signed.headers.location as string)).body, /An anonymous person wrote:[\s\S]*No name/)
      t.notMatch((await app.inject('/guestbook?guestbook_name=other')).body, /class="greeting"/)
    })

    t.test('the rendered greetings are cached, and the hits show on the page', async (t) => {
      const { app, greetings } = await setup(t)
      const book = uniqueName('cached')
      await greetings.add(book, { content: 'first', date: new Date() })
      const url = `/guestbook?guestbook_name=${book}`
      const first = await app.inject(url)
      await greetings.add(book, { content: 'written behind the cache\'s back', date: new Date() })
      const second = await app.inject(url)
      t.notMatch(second.body, /behind the cache/, 'served from the cache for its 10 seconds')
      const hits = (body: string) => Number(/Cache hits: (\d+)/.exec(body)?.[1])
      t.equal(hits(second.body), hits(first.body) + 1)
    })

    t.test('forms are protected: no token, no greeting', async (t) => {
      const { app, greetings } = await setup(t)
      const book = uniqueName('csrf')
      const forged = await app.inject({
        method: 'POST',
        url: `/sign?guestbook_name=${book}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'content=forged'
      })
      t.equal(forged.statusCode, 403)
      t.same(await greetings.latest(book, 10), [])
    })

    t.test('an empty message is refused with a reason', async (t) => {
      const { app } = await setup(t)
      const response = await sign(app, uniqueName('empty'), { content: '   ' })
      t.equal(response.statusCode, 400)
      t.match(response.json(), { message: /content/ })
    })
  })
}

contract(t, 'embedded', async (t) => {
  const greetings = new MemoryGreetingsRepository()
  return { app: await buildTestApp(t, testConfig(), { greetings }), greetings }
})

contract(t, 'Redis and the Firestore emulator', async (t) => {
  const greetings = new FirestoreGreetingsRepository(await testFirestore(t), { collection: uniqueName('guestbooks'), calls: new BoundedCalls({ timeoutMs: 5000 }) })
  return { app: await buildTestApp(t, testConfig(), { greetings, redis: await redisReady(testRedis(t)) }), greetings }
})

t.test('greetings too large for the cache are logged, and the page still works', async (t) => {
  const greetings = new MemoryGreetingsRepository()
  for (let i = 0; i < 10; i++) await greetings.add('big', { content: 'x'.repeat(150_000), date: new Date() })
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, testConfig(), { greetings, loggerInstance: logger })
  const page = await app.inject('/guestbook?guestbook_name=big')
  t.equal(page.statusCode, 200)
  t.ok(page.body.length > 1_500_000)
  t.ok(lines().some((l) => l.message === 'greetings too large for the cache; rendered on every request'))
})
