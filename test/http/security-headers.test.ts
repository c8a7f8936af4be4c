import t from 'tap'
import { securityHeaders } from '../../src/http/security-headers.js'
import { buildTestApp, testConfig } from '../helpers/app.js'

t.test('helmet\'s headers, computed once, on every kind of response', async (t) => {
  const app = await buildTestApp(t, testConfig({ rateLimitWrites: 1 }))
  const responses = {
    page: await app.inject({ url: '/', headers: { 'user-agent': 'a' } }),
    hit: await app.inject({ url: '/', headers: { 'user-agent': 'a' } }),
    json: await app.inject({ url: '/', headers: { 'user-agent': 'a', accept: 'application/json' } }),
    notFound: await app.inject('/no-such-page'),
    tooMany: await app.inject({ url: '/', headers: { 'user-agent': 'b' } }),
    refused: await app.inject({ method: 'HEAD', url: '/' }),
    forged: await app.inject({ method: 'POST', url: '/sign', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'content=x' })
  }
  t.equal(responses.tooMany.statusCode, 429)
  t.equal(responses.forged.statusCode, 403)
  for (const [name, response] of Object.entries(responses)) {
    t.equal(response.headers['content-security-policy'],
      "default-src 'none';style-src 'self';img-src 'self';form-action 'self';base-uri 'none';frame-ancestors 'none'", `${name}: CSP`)
    t.equal(response.headers['x-content-type-options'], 'nosniff', `${name}: nosniff`)
    t.equal(response.headers['x-frame-options'], 'SAMEORIGIN', `${name}: frame options`)
  }
})

t.test('the recorded set is what helmet sets, without X-Powered-By', async (t) => {
  const headers = securityHeaders({ contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"] } } })
  t.equal(headers['content-security-policy'], "default-src 'none'")
  t.equal(headers['referrer-policy'], 'no-referrer')
  t.equal(headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', 'helmet\'s defaults apply unless turned off')
  t.notOk('x-powered-by' in headers)
  t.ok(Object.isFrozen(headers))
})
