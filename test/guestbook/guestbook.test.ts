import t from 'tap'
import type { Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { FirestoreGreetingsRepository } from '../../src/guestbook/firestore-repository.js'
import { MemoryGreetingsRepository } from '../../src/guestbook/memory-repository.js'
import type { GreetingsRepository } from '../../src/guestbook/repository.js'
import { BoundedCalls } from '../../src/plugins/bounded-calls.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { redisReady, testDatastore, testFirestore, testRedis, uniqueName } from '../helpers/services.js'
import { DatastoreGreetingsRepository } from '../../src/guestbook/datastore-repository.js'

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

    t.test('an empty or blank message: the form again with one message and the name kept; nothing stored', async (t) => {
      const { app, greetings } = await setup(t)
      const book = uniqueName('empty')
      for (const content of ['', '   \n\t ']) {
        const response = await sign(app, book, { content, author: 'Ann <i>' })
        t.equal(response.statusCode, 200, `${JSON.stringify(content)}: the form again, not a 400`)
        t.equal([...response.body.matchAll(/<p class="flash" role="alert">([^<]*)<\/p>/g)].map((m) => m[1]).join('|'), 'Write a message before signing.', 'one message')
        t.match(response.body, '<input name="author" maxlength="100" value="Ann &lt;i&gt;">')
        t.match(response.body, /<input type="hidden" name="_csrf" value="[^"]+">/, 'ready to send again')
        t.match(response.body, `Guestbook: ${book}`)
      }
      t.same(await greetings.latest(book, 10), [])
      const api = await app.inject({ method: 'POST', url: '/sign', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }, payload: 'content=%20' })
      t.equal(api.statusCode, 403, 'a JSON client without a token is refused first')
    })

    t.test('a form open across a restart: the form again, with a fresh token and what was typed', async (t) => {
      const { app, greetings } = await setup(t)
      const book = uniqueName('restart')
      // Another process's cookie and token: without SESSION_SECRET each process signs with a key of its own.
      const before = await buildTestApp(t, testConfig())
      const old = await before.inject(`/guestbook?guestbook_name=${book}`)
      const oldCookie = old.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
      const post = async (headers: Record<string, string>) => await app.inject({
        method: 'POST',
        url: `/sign?guestbook_name=${book}`,
        headers: { cookie: oldCookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
        payload: new URLSearchParams({ content: 'Typed before </textarea><b>', author: 'Bo "B"', _csrf: /name="_csrf" value="([^"]+)"/.exec(old.body)![1]! }).toString()
      })

      const ours = await post({ 'sec-fetch-site': 'same-origin' })
      t.equal(ours.statusCode, 403)
      t.match(ours.body, `Guestbook: ${book}`, 'the same book')
      t.match(ours.body, /<p class="flash" role="alert">The form had expired, so your message was not posted\. Here it is again: please sign once more\.<\/p>/)
      t.match(ours.body, '<textarea name="content" rows="3" cols="60" maxlength="2000" required>\nTyped before &lt;/textarea&gt;&lt;b&gt;</textarea>', 'the message, escaped')
      t.match(ours.body, '<input name="author" maxlength="100" value="Bo &quot;B&quot;">')
      t.same(await greetings.latest(book, 10), [], 'nothing posted')
      const token = /name="_csrf" value="([^"]+)"/.exec(ours.body)![1]!
      const cookie = ours.cookies.map((c) => `${c.name}=${c.value}`).join('; ')
      t.ok(cookie.includes('_csrf='), 'a fresh secret')
      const again = await app.inject({
        method: 'POST',
        url: `/sign?guestbook_name=${book}`,
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ content: 'Sent again', _csrf: token }).toString()
      })
      t.equal(again.statusCode, 303, 'the form sent again goes through')
      t.equal((await greetings.latest(book, 10)).length, 1)

      // By Origin, for a browser that does not send Sec-Fetch-Site.
      const byOrigin = await post({ origin: 'http://localhost:8080', host: 'localhost:8080' })
      t.match(byOrigin.body, 'Typed before &lt;/textarea&gt;', 'an Origin of this host counts as our own page')

      // Another site's post is not put in our form: the user would be sending someone else's text.
      for (const headers of [{ 'sec-fetch-site': 'cross-site' }, { origin: 'https://evil.example' }, {}] as Array<Record<string, string>>) {
        const foreign = await post(headers)
        t.equal(foreign.statusCode, 403)
        t.match(foreign.body, /The form had expired or was not sent from this page, so nothing was posted\./, JSON.stringify(headers))
        t.notMatch(foreign.body, /Typed before/)
        t.notMatch(foreign.body, /Bo &quot;B&quot;/)
      }
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

contract(t, 'Redis and the Datastore-mode emulator', async (t) => {
  const greetings = new DatastoreGreetingsRepository(await testDatastore(t), { calls: new BoundedCalls({ timeoutMs: 5000 }) })
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
