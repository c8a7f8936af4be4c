import assert from 'node:assert/strict'
import t from 'tap'
import type { Test } from 'tap'
import fc from 'fast-check'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { MemoryGreetingsRepository } from '../../src/guestbook/memory-repository.js'
import { MemoryTasksRepository } from '../../src/tasks/memory-repository.js'
import { visitorOf } from '../../src/visits/visitor.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { FormClient } from '../helpers/form-client.js'
import { redisReady, testRedis, uniqueName } from '../helpers/services.js'

/*
 * Whatever a visitor sends (a user agent, a greeting, a book or task name) reaches our
 * pages only HTML-escaped, through every path: rendered fresh, and served from the
 * cached list, the cached greetings, the cached task rows and the cached task page.
 * Each property checks a page two ways: the input shows exactly where it belongs, in
 * its escaped form; and the page holds no markup but the tags, with the attributes,
 * that our templates produce for harmless input.
 */

// Known attacks: tags, attribute breakouts (double, single quotes, backticks), URLs,
// closing tags of the elements our inputs sit in, entities, control and bidi
// characters, template syntax, our own token slot, and long strings.
const KNOWN_PAYLOADS = [
  '<script>alert(1)</script>',
  '<SCRIPT SRC=//evil.example/x.js></SCRIPT>',
  '<scr<script>ipt>alert(1)</scr</script>ipt>',
  '"><img src=x onerror=alert(1)>',
  '\'><img src=x onerror=alert(1)>',
  '"><svg onload=alert(1)>',
  '<svg/onload=alert(1)>',
  '<img src=x onerror="alert(1)">',
  '<body onload=alert(1)>',
  '<iframe src="javascript:alert(1)"></iframe>',
  '<a href="javascript:alert(1)">click</a>',
  'javascript:alert(1)',
  ' JaVaScRiPt:alert(document.cookie)',
  'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  '" onmouseover="alert(1)',
  '" autofocus onfocus="alert(1)" x="',
  '\' onfocus=\'alert(1)\' autofocus=\'',
  '` onmouseover=alert(1) `',
  '"`><img src=`x` onerror=`alert(1)`>',
  '</textarea><script>alert(1)</script>',
  '</title><script>alert(1)</script>',
  '</span></li></ul><script>alert(1)</script>',
  '</blockquote></article><script>alert(1)</script>',
  '</b><script>alert(1)</script>',
  '<!--<script>alert(1)</script>-->',
  '<![CDATA[<script>alert(1)</script>]]>',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
  '<style>@import "//evil.example/x.css";</style>',
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<base href="//evil.example/">',
  '<form action="//evil.example/"><button>go</button></form>',
  '&lt;script&gt;alert(1)&lt;/script&gt;',
  '&#60;script&#62;alert(1)&#60;/script&#62;',
  '&#x3C;img src=x onerror=alert(1)&#x3E;',
  '&quot; onerror=&quot;alert(1)',
  '&amp;lt;b&amp;gt;',
  '<csrf-token>',
  '$& $\' $` $1',
  '<%= it %>',
  '<%~ it.body %>',
  // eslint-disable-next-line no-template-curly-in-string -- template syntax as input, not as code
  '${alert(1)}',
  '{{constructor.constructor("alert(1)")()}}',
  '\\"><script>alert(1)</script>',
  '%3Cscript%3Ealert(1)%3C%2Fscript%3E',
  '\u003cscript\u003ealert(1)\u003c/script\u003e',
  '＜script＞alert(1)＜/script＞',
  'a\u0000b',
  '\u0000<script>alert(1)</script>',
  '<scr\u0000ipt>alert(1)</scr\u0000ipt>',
  '\r\n\r\n<script>alert(1)</script>',
  '\t<img\tsrc=x\tonerror=alert(1)>',
  '\u2028\u2029<b>',
  '\u202e<b>gnp.exe</b>',
  '\ufeff<img src=x onerror=alert(1)>',
  '\u0001\u001b[31m\u007f\u0085',
  'Zalgo Z̴̡̛a̷l̸g̵o̶ <i>',
  '😀<svg onload=alert(1)>😀',
  '<'.repeat(3000),
  '"'.repeat(700),
  '\''.repeat(700),
  '&'.repeat(700),
  '<script>alert(1)</script>'.repeat(100)
]

/** Pieces an attack is built from. */
const DANGEROUS = fc.constantFrom(
  '<', '>', '"', '\'', '`', '&', '=', '/', '\\', '\u0000', '\r\n', '&amp;', '&#x3C;', '&lt;',
  '<script>', '</script>', '<img src=x onerror=alert(1)>', '" onload="alert(1)', '\' onload=\'alert(1)',
  'javascript:', '</textarea>', '</span>', '<svg onload=alert(1)>', '<!--', '-->', '<csrf-token>', '<%=', '%>'
)

const payload: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...KNOWN_PAYLOADS),
  fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 20 }), DANGEROUS), { minLength: 1, maxLength: 8 }).map((parts) => parts.join('')),
  fc.string({ unit: 'binary-ascii', maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 })
)

const codePoints = (text: string, max: number): string => Array.from(text).slice(0, max).join('')
/** Text as printable ASCII lines, for test names and messages. */
const printable = (text: string): string => text.replace(/[^\n\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
/** A payload, quoted and cut, as printable ASCII. */
const show = (text: string, max = 40): string => printable(JSON.stringify(codePoints(text, max)))
/** What the form fields allow (lengths in code points, as the schemas count them). */
const withinLength = (max: number) => (text: string) => codePoints(text, max)
/** A value the field accepts: at most `max` code points, not blank. */
const notBlank = (max: number) => (text: string) => codePoints(text.trim() === '' ? `x${text}` : text, max)

/** Eta's escape: the five characters that matter in text and in quoted attributes. */
function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', '\'': '&#39;' })[c]!)
}

function decodeEntities (text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const lower = e.toLowerCase()
    const code = lower.startsWith('#x') ? parseInt(lower.slice(2), 16) : lower.startsWith('#') ? parseInt(lower.slice(1), 10) : undefined
    if (code !== undefined) return code <= 0x10ffff ? String.fromCodePoint(code) : '\ufffd'
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: '\'' } as Record<string, string>)[lower]!
  })
}

// Our templates write lowercase tags with double-quoted or bare attributes: an escaped
// input can never produce one, as it holds no < and no ".
const DOCTYPE = '<!doctype html>'
const TAG = /<(\/?)([a-z][a-z0-9]*)((?:\s+[a-z][a-z-]*(?:="[^"]*")?)*)\s*>/y
const ATTRIBUTE = /\s+([a-z][a-z-]*)(?:="([^"]*)")?/g

interface Markup {
  /** Each tag as name and attribute names, e.g. `input[type,name,value]`. */
  skeletons: string[]
  /** Problems: a < that opens none of our tags, an event handler, a javascript: URL, a repeated attribute. */
  problems: string[]
  /** The text between the tags. */
  text: string
}

function markupOf (body: string): Markup {
  const markup: Markup = { skeletons: [], problems: [], text: '' }
  let at = 0
  if (body.startsWith(DOCTYPE)) at = DOCTYPE.length
  else markup.problems.push('the page does not start with its doctype')
  while (at < body.length) {
    const open = body.indexOf('<', at)
    markup.text += body.slice(at, open === -1 ? body.length : open)
    if (open === -1) break
    TAG.lastIndex = open
    const tag = TAG.exec(body)
    if (tag === null) {
      markup.problems.push(`a "<" that opens none of our tags: ${show(body.slice(Math.max(0, open - 40), open + 60), 100)}`)
      at = open + 1
      continue
    }
    const names: string[] = []
    for (const [, name, value] of tag[3]!.matchAll(ATTRIBUTE)) {
      if (names.includes(name!)) markup.problems.push(`attribute ${name!} repeated in ${tag[0]}`)
      if (/^on/.test(name!)) markup.problems.push(`event handler attribute in ${tag[0]}`)
      if (value !== undefined && /^(href|src|action|formaction)$/.test(name!) && /^\s*(javascript|data|vbscript):/i.test(decodeEntities(value))) {
        markup.problems.push(`script URL in ${tag[0]}`)
      }
      names.push(name!)
    }
    markup.skeletons.push(`${tag[1]!}${tag[2]!}[${names.join(',')}]`)
    at = open + tag[0].length
  }
  return markup
}

/**
 * What is wrong with a page: a snippet of `expected` (the escaped input in its place)
 * missing, a tag or attribute that harmless input never produces, a raw > or " in the
 * text. The first catches raw output of any input with a character that needs escaping;
 * the others catch markup wherever it got in.
 */
function pageProblems (body: string, expected: string[], allowed: ReadonlySet<string>): string[] {
  const problems = expected.filter((snippet) => !body.includes(snippet)).map((snippet) => `the page lacks ${show(snippet, 300)}`)
  const markup = markupOf(body)
  problems.push(...markup.problems)
  for (const skeleton of new Set(markup.skeletons)) if (!allowed.has(skeleton)) problems.push(`a tag our templates never write: ${skeleton}`)
  const raw = /[<>"]/.exec(markup.text)
  if (raw !== null) problems.push(`an unescaped ${raw[0]} in the text: ${show(markup.text.slice(Math.max(0, raw.index - 40), raw.index + 40), 80)}`)
  return problems
}

function assertSafePage (response: LightMyRequestResponse, expected: string[], allowed: ReadonlySet<string>, status = 200): void {
  assert.equal(response.statusCode, status, `status ${response.statusCode}: ${response.body.slice(0, 300)}`)
  assertHtmlHeaders(response)
  assert.deepEqual(pageProblems(response.body, expected, allowed), [])
}

/** An HTML page with our CSP: nothing but our stylesheet may load, even if markup got in. */
function assertHtmlHeaders (response: LightMyRequestResponse): void {
  assert.equal(response.headers['content-type'], 'text/html; charset=utf-8')
  const csp = String(response.headers['content-security-policy'] ?? '')
  assert.match(csp, /(^|;)\s*default-src 'none'\s*(;|$)/, `CSP: ${csp}`)
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `CSP: ${csp}`)
  assert.match(csp, /(^|;)\s*base-uri 'none'\s*(;|$)/, `CSP: ${csp}`)
  assert.equal(response.headers['x-content-type-options'], 'nosniff')
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const FROM_OUR_PAGE = { 'sec-fetch-site': 'same-origin' }

/** Runs a property; its counterexample, shrunk, is the failure message. */
async function holds<Ts extends [unknown, ...unknown[]]> (t: Test, property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  const details = await fc.check(property, { numRuns })
  t.notOk(details.failed, details.failed ? printable(`${fc.defaultReportMessage(details)}\n${String(details.errorInstance)}`) : `${details.numRuns} runs`)
  if (!details.failed) t.equal(details.numRuns, numRuns, 'every run was made')
}

interface Setup {
  app: FastifyInstance
  greetings: MemoryGreetingsRepository
  tasks: MemoryTasksRepository
}

const setups: Record<string, (t: Test) => Promise<Setup>> = {
  'in-process cache': async (t) => {
    const greetings = new MemoryGreetingsRepository()
    const tasks = new MemoryTasksRepository()
    const app = await buildTestApp(t, testConfig(), { greetings, tasks })
    t.equal(app.cache.store.kind, 'memory')
    return { app, greetings, tasks }
  },
  Redis: async (t) => {
    const greetings = new MemoryGreetingsRepository()
    const tasks = new MemoryTasksRepository()
    const app = await buildTestApp(t, testConfig(), { greetings, tasks, redis: await redisReady(testRedis(t)) })
    t.equal(app.cache.store.kind, 'redis')
    return { app, greetings, tasks }
  }
}

/** The markup our templates write for harmless input: every page, every branch. */
async function ourMarkup (t: Test): Promise<Set<string>> {
  const greetings = new MemoryGreetingsRepository()
  const app = await buildTestApp(t, testConfig(), { greetings, tasks: new MemoryTasksRepository() })
  await greetings.add('plain', { content: 'hello', author: 'Ann', date: new Date() })
  await greetings.add('plain', { content: 'hi', date: new Date() })
  const browser = new FormClient(app)
  const pages = [
    await app.inject({ url: '/', headers: { 'user-agent': 'Mozilla/5.0' } }),
    await app.inject('/guestbook?guestbook_name=plain'),
    await browser.get('/tasks')
  ]
  await browser.post('/tasks', { name: 'one' })
  await browser.post('/tasks', { name: '' })
  pages.push(await browser.get('/tasks'))
  // The forms again: a blank greeting, an expired form, and an error page.
  await browser.get('/guestbook?guestbook_name=plain')
  pages.push(await browser.post('/sign?guestbook_name=plain', { content: ' ', author: 'Ann' }))
  pages.push(await app.inject({ method: 'POST', url: '/sign', headers: { ...FORM, ...FROM_OUR_PAGE }, payload: 'content=hello&author=Ann' }))
  pages.push(await app.inject({ method: 'POST', url: '/tasks', headers: { ...FORM, ...FROM_OUR_PAGE }, payload: 'name=one' }))
  pages.push(await app.inject('/no-such-page'))
  const skeletons = new Set<string>()
  for (const page of pages) {
    const markup = markupOf(page.body)
    t.same(markup.problems, [], 'our own pages pass the check')
    t.notMatch(markup.text, /[<>"]/)
    for (const skeleton of markup.skeletons) skeletons.add(skeleton)
  }
  t.ok(skeletons.has('span[class]') && skeletons.has('blockquote[]') && skeletons.has('input[name,value,maxlength]') && skeletons.has('p[class,role]') &&
    skeletons.has('a[href]'),
  'every branch of the templates was rendered')
  return skeletons
}

t.test('the check itself: it fails for a template that writes input raw', async (t) => {
  const allowed = await ourMarkup(t)
  // The visits page around one input, written as an escaping template and as a raw one would.
  const page = (inner: string) => `${DOCTYPE}\n<html lang="en">\n<body>\n<main>\n<ul class="visits">\n  <li>from <span class="visitor">${inner}</span></li>\n</ul>\n</main>\n</body>\n</html>\n`
  const expected = (input: string) => [`<span class="visitor">${escapeHtml(input)}</span>`]
  for (const input of KNOWN_PAYLOADS) {
    t.same(pageProblems(page(escapeHtml(input)), expected(input), allowed), [], `escaped: ${show(input)}`)
    if (escapeHtml(input) !== input) t.not(pageProblems(page(input), expected(input), allowed).length, 0, `raw: ${show(input)}`)
  }
  // Markup found even where the expected snippet is not checked.
  const problems = (body: string) => pageProblems(body, [], allowed).join('\n')
  t.match(problems(page('<img src=x onerror=alert(1)>')), /opens none of our tags/)
  t.match(problems(page('x" onclick="y')), /unescaped "/)
  t.match(problems(page('<p onclick="alert(1)">')), /event handler/)
  t.match(problems(`${DOCTYPE}<input name="guestbook_name" value="x" class="y" maxlength="100">`), /input\[name,value,class,maxlength\]/,
    'an attribute breakout, even to an attribute our markup has elsewhere')
  t.match(problems(`${DOCTYPE}<form class="sign" action="javascript:alert(1)" method="post">`), /script URL/)
  t.match(problems(`${DOCTYPE}<a href=" &#106;avascript:alert(1)">`), /script URL/)
})

for (const [label, setup] of Object.entries(setups)) {
  t.test(`escaped on every path (${label})`, async (t) => {
    const allowed = await ourMarkup(t)

    t.test('GET /: the user agent, in the list fresh from the store and from the cache', async (t) => {
      const { app } = await setup(t)
      await holds(t, fc.asyncProperty(payload, async (agent) => {
        const shown = `<span class="visitor">${escapeHtml(visitorOf('127.0.0.1', agent, 'truncated'))}</span>`
        const first = await app.inject({ url: '/', headers: { 'user-agent': agent } })
        assertSafePage(first, [shown], allowed)
        // The same visitor again is a refresh: the page comes from the cached list.
        const again = await app.inject({ url: '/', headers: { 'user-agent': agent } })
        assert.equal(again.headers['x-cache'], 'hit')
        assertSafePage(again, [shown], allowed)
      }), 50)
    })

    t.test('a user agent is cut to 512 code points, and escaped after the cut', async (t) => {
      const { app } = await setup(t)
      await holds(t, fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 20 }), fc.integer({ min: 400, max: 700 }), async (lead, length) => {
        const agent = (lead + '"><script>alert(1)</script>'.repeat(30)).slice(0, length)
        const response = await app.inject({ url: '/', headers: { 'user-agent': agent } })
        const visitor = /<span class="visitor">([^<]*)<\/span>/.exec(response.body)?.[1]
        assert.ok(visitor !== undefined, 'the visitor is shown as text')
        assert.equal(visitor, escapeHtml(`127.0.0.0: ${codePoints(agent, 512)}`))
        assertSafePage(response, [], allowed)
      }), 30)
    })

    t.test('POST /sign: name, message and book, signed through the form', async (t) => {
      const { app } = await setup(t)
      const browser = new FormClient(app)
      await holds(t, fc.asyncProperty(
        payload.map(withinLength(100)), payload.map(notBlank(2000)), payload.map(withinLength(100)),
        async (book, content, author) => {
          const shownBook = book || 'default_guestbook'
          const query = new URLSearchParams({ guestbook_name: shownBook }).toString()
          const form = await browser.get(`/guestbook?guestbook_name=${encodeURIComponent(book)}`)
          assertSafePage(form, [
            `<h1>Guestbook: ${escapeHtml(shownBook)}</h1>`,
            `<form class="sign" action="/sign?${escapeHtml(query)}" method="post">`,
            `<input name="guestbook_name" value="${escapeHtml(shownBook)}" maxlength="100">`
          ], allowed)
          const signed = await browser.post(`/sign?guestbook_name=${encodeURIComponent(book)}`, { content, author })
          assert.equal(signed.statusCode, 303, signed.body)
          assert.equal(signed.headers.location, `/guestbook?${query}`)
          const page = await browser.get(String(signed.headers.location))
          const who = author.trim() === '' ? 'An anonymous person wrote:' : `<b>${escapeHtml(author.trim())}</b> wrote:`
          assertSafePage(page, [`<p>${who}</p>\n  <blockquote>${escapeHtml(content)}</blockquote>`, `<h1>Guestbook: ${escapeHtml(shownBook)}</h1>`], allowed)
        }), 40)
    })

    t.test('the greetings are cached rendered, and served escaped from the cache', async (t) => {
      const { app, greetings } = await setup(t)
      await holds(t, fc.asyncProperty(payload, payload, async (content, author) => {
        const book = uniqueName('book')
        await greetings.add(book, { content, author, date: new Date() })
        const shown = `<p>${author === '' ? 'An anonymous person wrote:' : `<b>${escapeHtml(author)}</b> wrote:`}</p>\n  <blockquote>${escapeHtml(content)}</blockquote>`
        const url = `/guestbook?guestbook_name=${book}`
        assertSafePage(await app.inject(url), [shown], allowed)
        const stored = await app.cache.get<string>(`${book}:greetings`, { namespace: `${app.cache.namespace}/guestbook` })
        assert.ok(stored?.includes(shown), 'the cache holds the escaped rendering')
        await greetings.add(book, { content: 'written behind the cache', date: new Date() })
        const cached = await app.inject(url)
        assert.doesNotMatch(cached.body, /written behind the cache/, 'served from the cache')
        assertSafePage(cached, [shown], allowed)
      }), 30)
    })

    t.test('POST /tasks: a task name, in the page fresh, from the cached page and from the cached row', async (t) => {
      const { app } = await setup(t)
      const browser = new FormClient(app)
      await browser.get('/tasks')
      await holds(t, fc.asyncProperty(payload.map(notBlank(200)), async (name) => {
        const added = await browser.post('/tasks', { name })
        assert.equal(added.statusCode, 303, added.body)
        const shown = `<span class="name">${escapeHtml(name.trim())}</span>`
        const fresh = await browser.get('/tasks')
        assert.equal(fresh.headers['x-cache'], 'miss')
        assertSafePage(fresh, [shown], allowed)
        const cached = await browser.get('/tasks')
        assert.equal(cached.headers['x-cache'], 'hit')
        assertSafePage(cached, [shown], allowed)
        const stored = await app.routeCache.lookup('tasks', ['tasks'])
        assert.ok(String(stored.hit?.body).includes(shown), 'the cached page holds the escaped name')
        const id = [...cached.body.matchAll(/<span class="name">([^<]*)<\/span>\s*<form action="\/tasks\/([^/"]+)\/delete"/g)]
          .find(([, shownName]) => shownName === escapeHtml(name.trim()))?.[2]
        assert.ok(id !== undefined, 'the row has its delete form')
        const row = await app.fragments.get<string>(`task:${id}`)
        assert.ok(row?.startsWith(`<li class="task">${shown}`), `the cached row holds the escaped name: ${show(row ?? '', 200)}`)
        // The token slot is filled in the served page, never by a name: every form has a real token.
        const tokens = [...cached.body.matchAll(/name="_csrf" value="([^"]*)"/g)].map((m) => m[1])
        assert.ok(tokens.length > 1 && tokens.every((token) => token !== undefined && /^[\w-]{10,}$/.test(token)), 'real tokens in every form')
      }), 40)
    })
  })
}

t.test('error pages and forms shown again escape what they echo', async (t) => {
  const allowed = await ourMarkup(t)
  const app = await buildTestApp(t, testConfig(), { greetings: new MemoryGreetingsRepository(), tasks: new MemoryTasksRepository() })
  const browser = new FormClient(app)
  await browser.get('/tasks')
  await holds(t, fc.asyncProperty(payload.filter((p) => p !== ''), payload.map(withinLength(100)), async (text, book) => {
    const part = encodeURIComponent(text)
    // A path nobody serves: the page does not repeat it.
    const missing = await app.inject(`/no-such-page/${part}`)
    assertSafePage(missing, ['<h1>Page not found</h1>'], allowed, 404)
    // A task id that fails validation, or names no task.
    const deleted = await browser.post(`/tasks/${part}/delete`, {})
    assert.ok([303, 400, 404, 414].includes(deleted.statusCode), `status ${deleted.statusCode}`)
    if (deleted.statusCode === 303) assert.equal(deleted.headers.location, '/tasks')
    else assertSafePage(deleted, [], allowed, deleted.statusCode)
    // Fields past their limits are refused before anything is stored or shown.
    const tooLong = await browser.post(`/sign?guestbook_name=${encodeURIComponent('x'.repeat(100) + codePoints(text, 50))}`, { content: 'hello' })
    assertSafePage(tooLong, ['In the address, guestbook_name must not have more than 100 characters.'], allowed, 400)
    const longMessage = await browser.post('/sign', { content: 'x'.repeat(2000) + text })
    assertSafePage(longMessage, ['In the form, content must not have more than 2000 characters.'], allowed, 400)
    // A blank greeting: the form again, with the name typed.
    const author = codePoints(text, 100)
    await browser.get(`/guestbook?guestbook_name=${encodeURIComponent(book)}`)
    const blank = await browser.post(`/sign?guestbook_name=${encodeURIComponent(book)}`, { content: ' ', author })
    assertSafePage(blank, [`<input name="author" maxlength="100" value="${escapeHtml(author)}">`], allowed)
    // An expired form from our own page: the form again, with the text typed, the book from the address.
    const expired = await app.inject({
      method: 'POST',
      url: `/sign?guestbook_name=${encodeURIComponent(book)}`,
      headers: { ...FORM, ...FROM_OUR_PAGE },
      payload: new URLSearchParams({ content: text, author }).toString()
    })
    assertSafePage(expired, [
      `<h1>Guestbook: ${escapeHtml(book || 'default_guestbook')}</h1>`,
      `maxlength="2000" required>\n${escapeHtml(codePoints(text, 2000))}</textarea>`,
      `<input name="author" maxlength="100" value="${escapeHtml(author)}">`
    ], allowed, 403)
    const task = await app.inject({ method: 'POST', url: '/tasks', headers: { ...FORM, ...FROM_OUR_PAGE }, payload: new URLSearchParams({ name: text }).toString() })
    assertSafePage(task, [`<input name="name" maxlength="200" value="${escapeHtml(codePoints(text, 200))}">`], allowed, 403)
  }), 40)
})
