import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, testConfig } from '../helpers/app.js'

async function recorded (app: FastifyInstance, remoteAddress: string, forwardedFor?: string): Promise<string> {
  const response = await app.inject({
    method: 'GET',
    url: '/',
    remoteAddress,
    headers: { 'user-agent': 'ua', accept: 'application/json', ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }) }
  })
  return (response.json() as { visits: Array<{ visitor: string }> }).visits[0]!.visitor
}

t.test('on Cloud Run (one trusted hop) the client is the last X-Forwarded-For entry', async (t) => {
  const app = await buildTestApp(t, testConfig({ trustProxyHops: 1 }))
  // Cloud Run's front end connects from its own address and appends the real client.
  t.equal(await recorded(app, '169.254.1.1', '203.0.113.77'), '203.0.113.0: ua')
  t.equal(await recorded(app, '169.254.1.1', '6.6.6.6, 198.51.100.23'), '198.51.100.0: ua',
    'a header the client sent itself is ignored')
  t.equal(await recorded(app, '169.254.1.1', '6.6.6.6,7.7.7.7, 192.0.2.200'), '192.0.2.0: ua')
  t.equal(await recorded(app, '169.254.1.1', '2001:db8:abcd:12:3456:789a:bcde:f012'), '2001:db8:abcd::: ua',
    'an IPv6 client keeps its first 48 bits')
  t.equal(await recorded(app, '169.254.1.1'), '169.254.1.0: ua', 'no header: the socket address')
})

t.test('with no trusted proxy X-Forwarded-For is ignored', async (t) => {
  const app = await buildTestApp(t, testConfig({ trustProxyHops: 0 }))
  t.equal(await recorded(app, '192.0.2.10', '6.6.6.6'), '192.0.2.0: ua')
})

t.test('two hops (a load balancer in front of Cloud Run)', async (t) => {
  const app = await buildTestApp(t, testConfig({ trustProxyHops: 2 }))
  t.equal(await recorded(app, '169.254.1.1', '6.6.6.6, 203.0.113.9, 130.211.0.5'), '203.0.113.0: ua')
})

t.test('full addresses when configured', async (t) => {
  const app = await buildTestApp(t, testConfig({ trustProxyHops: 1, visits: { ...testConfig().visits, ipMode: 'full' } }))
  t.equal(await recorded(app, '169.254.1.1', '203.0.113.77'), '203.0.113.77: ua')
  t.equal(await recorded(app, '::ffff:192.0.2.44'), '192.0.2.44: ua', 'an IPv4-mapped socket address shows as IPv4')
})

t.test('user agents are cut to 512 characters', async (t) => {
  const app = await buildTestApp(t, testConfig())
  const response = await app.inject({ method: 'GET', url: '/', headers: { 'user-agent': 'é'.repeat(2000), accept: 'application/json' } })
  const visitor = (response.json() as { visits: Array<{ visitor: string }> }).visits[0]!.visitor
  t.equal(visitor, `127.0.0.0: ${'é'.repeat(512)}`)
})
