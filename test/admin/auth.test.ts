import t from 'tap'
import type { OAuth2Client } from 'google-auth-library'
import { googleIapKeys, SESSION_COOKIE, SESSION_MS, sessionCookie } from '../../src/admin/auth.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { FormClient } from '../helpers/form-client.js'
import { adminApp, AUDIENCE, bearer, TOKEN } from './admin-app.js'
import { TestIap } from './iap-keys.js'

t.test('without ADMIN_TOKEN or ADMIN_IAP_AUDIENCE every /admin/ address is a 404', async (t) => {
  const app = await buildTestApp(t, testConfig())
  for (const [method, url] of [['GET', '/admin'], ['GET', '/admin/'], ['GET', '/admin/login'], ['GET', '/admin/key?namespace=a&key=b'], ['POST', '/admin/flush'], ['POST', '/admin/login']] as const) {
    const response = await app.inject({ method, url, headers: bearer })
    t.equal(response.statusCode, 404, `${method} ${url}`)
  }
})

t.test('with a token: a browser is sent to the sign-in form, a program gets 401, a bearer gets in', async (t) => {
  const { app } = await adminApp(t)
  const page = await app.inject('/admin/')
  t.equal(page.statusCode, 303)
  t.equal(page.headers.location, '/admin/login?next=%2Fadmin%2F')
  t.equal(page.headers['cache-control'], 'no-store')

  const json = await app.inject({ url: '/admin/', headers: { accept: 'application/json' } })
  t.equal(json.statusCode, 401)
  t.equal(json.headers['www-authenticate'], 'Bearer realm="cache console"')
  const post = await app.inject({ method: 'POST', url: '/admin/flush', payload: { namespace: 'x', confirm: 'x' } })
  t.equal(post.statusCode, 401, 'a change without credentials is refused')

  const wrong = await app.inject({ url: '/admin/', headers: { accept: 'application/json', authorization: `Bearer ${TOKEN}x` } })
  t.equal(wrong.statusCode, 401, 'a wrong bearer token')
  const right = await app.inject({ url: '/admin/', headers: { accept: 'application/json', ...bearer } })
  t.equal(right.statusCode, 200)
  t.ok(Array.isArray(right.json().namespaces))
})

t.test('the sign-in form: a wrong token is refused, the right one sets a session cookie that opens the console', async (t) => {
  const { app, lines } = await adminApp(t)
  const browser = new FormClient(app)
  const form = await browser.get('/admin/login?next=%2Fadmin%2Fkey')
  t.equal(form.statusCode, 200)
  t.match(form.body, /name="_csrf" value="[^"]+"/)
  t.match(form.body, '<input type="hidden" name="next" value="/admin/key">')

  const wrong = await browser.post('/admin/login', { token: 'not-it', next: '/admin/key' })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.body, 'That is not the console&#39;s token.')
  t.notOk(browser.cookieNames().includes(SESSION_COOKIE))
  t.ok(lines().some((line) => line.message === 'cache console: wrong token at sign-in'), 'a failed sign-in is logged')

  const right = await browser.post('/admin/login', { token: TOKEN, next: '/admin/key' })
  t.equal(right.statusCode, 303)
  t.equal(right.headers.location, '/admin/key')
  const cookie = right.cookies.find((c) => c.name === SESSION_COOKIE)!
  t.equal(cookie.path, '/admin')
  t.equal(cookie.httpOnly, true)
  t.equal(cookie.sameSite, 'Strict')
  const console_ = await browser.get('/admin/')
  t.equal(console_.statusCode, 200)
  t.match(console_.body, 'Signed in as token (signed in).')

  const out = await browser.post('/admin/logout', {})
  t.equal(out.statusCode, 303)
  t.equal((await browser.get('/admin/')).statusCode, 303, 'signed out')
})

t.test('the sign-in cookie: forged, expired, or made with another token, it opens nothing', async (t) => {
  const { app } = await adminApp(t)
  const get = async (value: string) => (await app.inject({ url: '/admin/', cookies: { [SESSION_COOKIE]: value } })).statusCode
  t.equal(await get(sessionCookie(TOKEN)), 200)
  t.equal(await get(sessionCookie(TOKEN, Date.now() - SESSION_MS - 1000)), 303, 'expired')
  t.equal(await get(sessionCookie(`${TOKEN}-old`)), 303, 'signed with another token')
  const [until] = sessionCookie(TOKEN).split('.')
  t.equal(await get(`${Number(until) + 3600_000}.${sessionCookie(TOKEN).split('.')[1]!}`), 303, 'its end moved')
  t.equal(await get('garbage'), 303)
})

t.test('the sign-in form sends only to console pages, never elsewhere', async (t) => {
  const { app } = await adminApp(t)
  for (const next of ['//evil.example/admin/', 'https://evil.example/', '/adminx', '/\\evil.example', '/guestbook']) {
    const browser = new FormClient(app)
    await browser.get('/admin/login')
    const response = await browser.post('/admin/login', { token: TOKEN, next })
    t.equal(response.headers.location, '/admin/', `next=${next}`)
  }
})

t.test('changes from a browser need the CSRF token; a bearer needs none', async (t) => {
  const { app } = await adminApp(t)
  const namespace = `${app.cache.namespace}/csrf`
  const cookies = { [SESSION_COOKIE]: sessionCookie(TOKEN) }
  const forged = await app.inject({ method: 'POST', url: '/admin/key', cookies, payload: { namespace, key: 'k', type: 'string', value: 'forged' } })
  t.equal(forged.statusCode, 403)
  t.equal(await app.cache.get('k', { namespace }), undefined, 'nothing was written')
  const flush = await app.inject({ method: 'POST', url: '/admin/flush', cookies, payload: { namespace, confirm: namespace } })
  t.equal(flush.statusCode, 403)

  const browser = new FormClient(app)
  await browser.get('/admin/login')
  await browser.post('/admin/login', { token: TOKEN })
  await browser.get(`/admin/key?namespace=${encodeURIComponent(namespace)}&key=k`)
  const posted = await browser.post('/admin/key', { namespace, key: 'k', type: 'string', value: 'from the form' })
  t.equal(posted.statusCode, 303)
  t.equal(await app.cache.get('k', { namespace }), 'from the form')

  const api = await app.inject({ method: 'POST', url: '/admin/key', headers: { ...bearer, accept: 'application/json' }, payload: { namespace, key: 'k', type: 'string', value: 'from a program' } })
  t.equal(api.statusCode, 200)
  t.equal(await app.cache.get('k', { namespace }), 'from a program')
})

t.test('IAP: a good assertion gets in as its email; bad audience, issuer, expiry, signature or algorithm are refused', async (t) => {
  const iap = new TestIap()
  const { app, lines } = await adminApp(t, { admin: { iapAudience: AUDIENCE }, deps: { iapKeys: iap.keys } })
  const ask = async (assertion?: string) => await app.inject({
    url: '/admin/',
    headers: { accept: 'application/json', ...(assertion === undefined ? {} : { 'x-goog-iap-jwt-assertion': assertion }) }
  })
  const good = await ask(iap.assertion({ aud: AUDIENCE }))
  t.equal(good.statusCode, 200)
  const page = await app.inject({ url: '/admin/', headers: { 'x-goog-iap-jwt-assertion': iap.assertion({ aud: AUDIENCE }) } })
  t.match(page.body, 'Signed in as ops@example.com.')

  const now = Math.floor(Date.now() / 1000)
  const cases: Array<[string, string | undefined]> = [
    ['no header', undefined],
    ['another audience', iap.assertion({ aud: '/projects/123456/global/backendServices/1' })],
    ['another issuer', iap.assertion({ aud: AUDIENCE, iss: 'https://accounts.google.com' })],
    ['expired', iap.assertion({ aud: AUDIENCE, iat: now - 7200, exp: now - 3600 })],
    ['signed by another key', iap.assertion({ aud: AUDIENCE }, { otherKey: true })],
    ['an unknown key id', iap.assertion({ aud: AUDIENCE }, { kid: 'rotated-away' })],
    ['another algorithm named', iap.assertion({ aud: AUDIENCE }, { alg: 'HS256' })],
    ['not a JWT', 'nonsense']
  ]
  for (const [name, assertion] of cases) {
    const response = await ask(assertion)
    t.equal(response.statusCode, 401, name)
  }
  t.ok(lines().some((line) => line.message === 'cache console: credentials refused' && /audience/i.test(String(line.reason))), 'the reason is logged')
  // No token configured: no sign-in form, and a browser without IAP's header is told, not redirected.
  t.equal((await app.inject('/admin/login')).statusCode, 404, 'no sign-in form')
  t.equal((await app.inject('/admin/')).statusCode, 401)
  t.match((await app.inject('/admin/')).body, 'Identity-Aware Proxy')
  t.equal((await app.inject({ url: '/admin/', headers: { accept: 'application/json', ...bearer } })).statusCode, 401, 'no token: a bearer proves nothing')
})

t.test('IAP: when its keys cannot be had the answer is 503, and the keys are asked again for a new key id', async (t) => {
  const iap = new TestIap()
  let down = true
  const { app } = await adminApp(t, {
    admin: { iapAudience: AUDIENCE },
    deps: { iapKeys: async (refresh) => { if (down) throw new Error('connect ECONNREFUSED'); return await iap.keys(refresh) } }
  })
  const ask = async (kid?: string) => await app.inject({ url: '/admin/', headers: { accept: 'application/json', 'x-goog-iap-jwt-assertion': iap.assertion({ aud: AUDIENCE }, kid === undefined ? {} : { kid }) } })
  const unavailable = await ask()
  t.equal(unavailable.statusCode, 503)
  t.equal(unavailable.headers['retry-after'], '5')
  down = false
  t.equal((await ask()).statusCode, 200)
  const before = iap.fetches
  t.equal((await ask('rotated')).statusCode, 401)
  t.equal(iap.fetches, before + 2, 'asked once as usual, once more for the new key id')
})

t.test('IAP and a token together: a bad IAP header is refused even with the right bearer', async (t) => {
  const iap = new TestIap()
  const { app } = await adminApp(t, { admin: { iapAudience: AUDIENCE, token: TOKEN }, deps: { iapKeys: iap.keys } })
  const bad = await app.inject({ url: '/admin/', headers: { accept: 'application/json', ...bearer, 'x-goog-iap-jwt-assertion': iap.assertion({ aud: 'wrong' }) } })
  t.equal(bad.statusCode, 401)
  const tokenOnly = await app.inject({ url: '/admin/', headers: { accept: 'application/json', ...bearer } })
  t.equal(tokenOnly.statusCode, 200, 'the token still works for a request that did not come through IAP')
})

t.test('Google\'s IAP keys: fetched once for concurrent requests, kept, fetched again when asked to', async (t) => {
  let fetches = 0
  const client = { getIapPublicKeys: async () => { fetches++; await new Promise((resolve) => setTimeout(resolve, 20)); return { pubkeys: { [`k${fetches}`]: 'pem' } } } }
  const keys = googleIapKeys(client as unknown as OAuth2Client)
  const [a, b] = await Promise.all([keys(false), keys(false)])
  t.equal(fetches, 1, 'one fetch for two requests at once')
  t.same(a, { k1: 'pem' })
  t.equal(a, b)
  t.same(await keys(false), { k1: 'pem' }, 'kept')
  t.same(await keys(true), { k2: 'pem' }, 'a new key id fetches again')
  t.equal(fetches, 2)
})

t.test('the console says at start-up that it is on, and how it is guarded', async (t) => {
  const { lines } = await adminApp(t, { admin: { token: TOKEN, iapAudience: AUDIENCE }, deps: { iapKeys: new TestIap().keys } })
  const line = lines().find((l) => l.message === 'cache console on at /admin/')
  t.same(line?.consoleAuth, [`IAP (audience ${AUDIENCE})`, 'ADMIN_TOKEN'])
  t.notMatch(JSON.stringify(lines()), TOKEN, 'the token is never logged')
})
