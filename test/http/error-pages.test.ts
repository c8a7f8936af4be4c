import { connect, type Socket } from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import type { ConnectionError, LightMyRequestResponse } from 'fastify'
import { EarlyErrors } from '../../src/http/error-pages.js'
import { acceptPrefersJson } from '../../src/http/negotiation.js'
import { MemoryGreetingsRepository } from '../../src/guestbook/memory-repository.js'
import type { VisitsRepository } from '../../src/visits/repository.js'
import { buildTestApp, testConfig } from '../helpers/app.js'

const CSP = "default-src 'none';style-src 'self';img-src 'self';form-action 'self';base-uri 'none';frame-ancestors 'none'"

/** The site's error page: its status, a sentence of what happened, what to do, a link home. */
function assertPage (t: Test, response: { statusCode: number, headers: Record<string, unknown>, body: string }, status: number, title: string, message: RegExp): void {
  t.equal(response.statusCode, status, `${title}: status`)
  t.equal(response.headers['content-type'], 'text/html; charset=utf-8', `${title}: a page`)
  t.equal(response.headers['content-security-policy'], CSP, `${title}: our CSP`)
  t.equal(response.headers['cache-control'], 'no-store', `${title}: not cached`)
  t.match(response.body, `<h1>${title}</h1>`)
  t.match(response.body, message)
  t.match(response.body, '<p><a href="/">Back to the home page</a></p>')
  t.match(response.body, new RegExp(`<p class="note">Status ${status} \\(`))
}

function assertJson (t: Test, response: LightMyRequestResponse, status: number, message: RegExp, code?: string): void {
  t.equal(response.statusCode, status)
  t.match(response.headers['content-type'], /^application\/json/)
  const body = response.json() as Record<string, unknown>
  t.equal(body.statusCode, status)
  t.type(body.error, 'string')
  t.match(body.message, message)
  if (code !== undefined) t.equal(body.code, code)
}

const JSON_ACCEPT = { accept: 'application/json' }
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

t.test('every error a route, a hook or Fastify raises is a page, or JSON for a JSON client', async (t) => {
  const app = await buildTestApp(t, testConfig(), { greetings: new MemoryGreetingsRepository() })
  const both = async (request: { method?: 'GET' | 'POST' | 'HEAD', url: string, headers?: Record<string, string>, payload?: string }) => ({
    page: await app.inject({ ...request, headers: { ...request.headers, accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } }),
    json: await app.inject({ ...request, headers: { ...request.headers, ...JSON_ACCEPT } })
  })

  t.test('404: an unknown path', async (t) => {
    const { page, json } = await both({ url: '/no-such-page?x=1' })
    assertPage(t, page, 404, 'Page not found', /There is no page at this address\./)
    assertJson(t, json, 404, /There is no page at this address\./)
  })

  t.test('405: a path that takes other methods names them in Allow', async (t) => {
    const post = await both({ method: 'POST', url: '/' })
    assertPage(t, post.page, 405, 'Not allowed', /This address takes GET requests, not POST\./)
    t.equal(post.page.headers.allow, 'GET')
    assertJson(t, post.json, 405, /takes GET requests/)
    t.equal(post.json.headers.allow, 'GET')
    const head = await app.inject({ method: 'HEAD', url: '/' })
    t.equal(head.statusCode, 405, 'HEAD / too, as it would record a visit')
    t.equal(head.headers.allow, 'GET')
    t.equal(head.body, '')
    const sign = await app.inject('/sign')
    t.equal(sign.statusCode, 405)
    t.equal(sign.headers.allow, 'POST')
    const guestbook = await app.inject({ method: 'DELETE', url: '/guestbook?guestbook_name=x' })
    t.equal(guestbook.headers.allow, 'GET, HEAD', 'the query plays no part')
  })

  t.test('400: a value the schema refuses, said in words', async (t) => {
    const { page, json } = await both({ url: `/guestbook?guestbook_name=${'x'.repeat(101)}` })
    assertPage(t, page, 400, 'Not accepted', /In the address, guestbook_name must not have more than 100 characters\./)
    assertJson(t, json, 400, /guestbook_name must not have more than 100 characters/, 'FST_ERR_VALIDATION')
  })

  t.test('400: a malformed address, which no route is matched for', async (t) => {
    const { page, json } = await both({ url: '/%E0%A4%A' })
    assertPage(t, page, 400, 'Bad request', /The address or the form could not be read\./)
    assertJson(t, json, 400, /could not be read/, 'FST_ERR_BAD_URL')
  })

  t.test('403: a form post without its CSRF token, from a JSON client (a browser gets the form again: see the forms\' tests)', async (t) => {
    const forged = await app.inject({ method: 'POST', url: '/sign', headers: { ...FORM, ...JSON_ACCEPT }, payload: 'content=hi' })
    assertJson(t, forged, 403, /The form was too old, or not sent from this site/, 'FST_CSRF_MISSING_SECRET')
  })

  t.test('413: a body over the limit', async (t) => {
    const { page, json } = await both({ method: 'POST', url: '/sign', headers: FORM, payload: `content=${'x'.repeat(1_100_000)}` })
    assertPage(t, page, 413, 'Too large', /What was sent is larger than this site accepts\./)
    assertJson(t, json, 413, /larger than this site accepts/, 'FST_ERR_CTP_BODY_TOO_LARGE')
  })

  t.test('414: a path parameter over the router\'s limit', async (t) => {
    const { page, json } = await both({ method: 'POST', url: `/tasks/${'x'.repeat(200)}/delete`, headers: FORM, payload: '' })
    assertPage(t, page, 414, 'Address too long', /Part of the address is longer than this site accepts\./)
    assertJson(t, json, 414, /longer than this site accepts/, 'FST_ERR_MAX_PARAM_LENGTH')
  })
})

t.test('an unexpected error is a 500 page, logged; its details are not shown', async (t) => {
  const failing: VisitsRepository = {
    kind: 'memory',
    usage: { queries: 0, documentsRead: 0, writes: 0 },
    add: async () => { throw new Error('secret detail of the failure') },
    latest: async () => { throw new Error('secret detail of the failure') },
    find: async () => { throw new Error('secret detail of the failure') },
    ping: async () => {}
  }
  const app = await buildTestApp(t, testConfig(), { repository: failing })
  const page = await app.inject({ url: '/', headers: { 'user-agent': 'a' } })
  assertPage(t, page, 500, 'Something went wrong', /The server failed to answer this request\./)
  t.notMatch(page.body, /secret detail/)
  const json = await app.inject({ url: '/', headers: { 'user-agent': 'a', ...JSON_ACCEPT } })
  t.same(json.json(), { statusCode: 500, error: 'Internal Server Error', message: 'The server failed to answer this request.' })
})

t.test('the favicon: ours, small, cached for a week, linked from every page', async (t) => {
  const app = await buildTestApp(t, testConfig())
  const svg = await app.inject('/favicon.svg')
  t.equal(svg.statusCode, 200)
  t.equal(svg.headers['content-type'], 'image/svg+xml')
  t.equal(svg.headers['cache-control'], 'public, max-age=604800')
  t.match(svg.body, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.ok(svg.rawPayload.length < 1024, `${svg.rawPayload.length} bytes`)
  const ico = await app.inject('/favicon.ico')
  t.equal(ico.statusCode, 200, 'what browsers ask for on their own is not a 404')
  t.equal(ico.headers['content-type'], 'image/x-icon')
  t.equal(ico.headers['cache-control'], 'public, max-age=604800')
  t.same([...ico.rawPayload.subarray(0, 4)], [0, 0, 1, 0], 'an ICO file')
  t.ok(ico.rawPayload.length < 2048, `${ico.rawPayload.length} bytes`)
  for (const url of ['/', '/guestbook', '/stats', '/no-such-page']) {
    t.match((await app.inject({ url, headers: { 'user-agent': 'a' } })).body, '<link rel="icon" href="/favicon.svg" type="image/svg+xml">', url)
  }
})

t.test('Accept negotiation, for parsed requests and those the parser rejected alike', async (t) => {
  t.equal(acceptPrefersJson(undefined), false, 'no header: the page')
  t.equal(acceptPrefersJson('application/json'), true)
  t.equal(acceptPrefersJson('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), false, 'a browser')
  t.equal(acceptPrefersJson('application/json, text/html;q=0.5'), true)
  t.equal(acceptPrefersJson('text/html, application/json'), false, 'a tie goes to HTML')
  t.equal(acceptPrefersJson('application/*, text/*;q=0.2'), false, 'names no json')
  t.equal(acceptPrefersJson('application/json;q=0, */*'), false, 'refused json')
  t.equal(acceptPrefersJson('text/*;q=0.4, application/json;q=0.6'), true, 'by quality')
  t.equal(acceptPrefersJson('*/*, application/json'), true, 'then by the more specific range')
})

t.test('the parser\'s answers: JSON until the pages are rendered, then negotiated; 408 for a request that never finished', async (t) => {
  const written: string[] = []
  const socket = { destroyed: false, writable: true, write: (data: string | Buffer) => { written.push(data.toString()) }, destroySoon: () => { written.push('<closed>') } }
  const answerTo = (code: string, rawPacket?: Buffer) => {
    written.length = 0
    early.clientError(Object.assign(new Error(code), { code, rawPacket }) as unknown as ConnectionError, socket as unknown as Socket)
    return written.join('')
  }
  const early = new EarlyErrors()
  t.match(answerTo('ERR_HTTP_REQUEST_TIMEOUT'), /^HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*content-type: application\/json[\s\S]*"message":"The request did not arrive completely in time\."\}<closed>$/)
  const app = await buildTestApp(t, testConfig())
  await early.prepare(app, { 'x-test': 'yes' })
  const page = answerTo('ERR_HTTP_REQUEST_TIMEOUT', Buffer.from('GET / HTTP/1.1\r\nAccept: text/html\r\n'))
  t.match(page, /^HTTP\/1\.1 408 Request Timeout\r\nx-test: yes\r\ncontent-type: text\/html; charset=utf-8\r\n/)
  t.match(page, '<h1>Request timed out</h1>')
  t.match(answerTo('HPE_INVALID_METHOD', Buffer.from('BREW / HTTP/1.1\r\nACCEPT: application/json\r\n')), /^HTTP\/1\.1 400 Bad Request[\s\S]*"message":"The request was not valid HTTP\."/)
  t.equal(answerTo('ECONNRESET'), '', 'a reset connection gets nothing')
})

/** One raw request to a listening server; the whole answer, as the server closes the connection. */
async function rawRequest (port: number, request: string): Promise<{ statusCode: number, headers: Record<string, string>, body: string }> {
  const text = await new Promise<string>((resolve, reject) => {
    let received = ''
    const socket = connect(port, '127.0.0.1', () => socket.write(request))
    socket.on('data', (chunk) => { received += chunk.toString() })
    socket.on('error', reject)
    socket.on('close', () => resolve(received))
  })
  const [head = '', body = ''] = text.split('\r\n\r\n', 2)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
  return { statusCode: Number(statusLine.split(' ')[1]), headers, body }
}

t.test('on a listening server: what the HTTP parser refuses gets the page or JSON too', async (t) => {
  const app = await buildTestApp(t, testConfig())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const cookie = `session=${'x'.repeat(20_000)}`

  const page = await rawRequest(port, `GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\nCookie: ${cookie}\r\n\r\n`)
  assertPage(t, page, 431, 'Request too large', /headers \(usually its cookies\) are larger than this site accepts\./)
  t.match(page.body, /Delete this site&#39;s cookies/)
  t.equal(Number(page.headers['content-length']), Buffer.byteLength(page.body), 'the length is the body\'s')
  t.equal(page.headers.connection, 'close')

  const json = await rawRequest(port, `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n`)
  t.equal(json.statusCode, 431, 'an address over the header limit')
  t.match(json.headers['content-type'], /^application\/json/)
  t.match(JSON.parse(json.body), { statusCode: 431, error: 'Request Header Fields Too Large', message: /larger than this site accepts/ })

  const garbage = await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n')
  assertPage(t, garbage, 400, 'Bad request', /The request was not valid HTTP\./)

  t.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200, 'the server serves on')
})
