import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import type { Config } from '../../src/config.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { freePort } from '../helpers/ports.js'
import { waitFor } from '../helpers/wait.js'

/** A redis-server of the test's own with extra arguments, ready when it says so. */
async function redisServer (t: Test, args: string[]): Promise<void> {
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(async () => { if (child.exitCode === null) { child.kill('SIGKILL'); await once(child, 'exit') } })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  await waitFor('redis-server to be ready', () => out.includes('Ready to accept connections'), 5000)
}

/** A CA and a certificate it signed for 127.0.0.1, made with openssl for this test. */
function certificates (dir: string, name: string): { ca: string, cert: string, key: string } {
  const file = (ext: string) => join(dir, `${name}.${ext}`)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.crt'), '-days', '1', '-subj', `/CN=${name} test CA`)
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('key'), '-out', file('csr'), '-subj', '/CN=127.0.0.1')
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1\\n' > ${file('ext')}`])
  openssl('x509', '-req', '-in', file('csr'), '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('crt'), '-days', '1', '-extfile', file('ext'))
  return { ca: file('ca.crt'), cert: file('crt'), key: file('key') }
}

async function pages (t: Test, redis: NonNullable<Config['redis']>): Promise<{ caches: unknown[], hints: unknown[] }> {
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, testConfig({ redis }), { loggerInstance: logger })
  const caches = []
  for (let i = 0; i < 2; i++) caches.push((await app.inject({ url: '/', headers: { 'user-agent': 'secure' } })).headers['x-cache'])
  return { caches, hints: lines().filter((l) => l.message === 'redis unreachable; requests are served without the cache until it is back').map((l) => l.hint) }
}

const base = { host: '127.0.0.1', commandTimeoutMs: 300, connectTimeoutMs: 500 }

t.test('AUTH: the right string caches; a wrong or missing one is logged with what to check, and pages still work', async (t) => {
  const port = await freePort()
  await redisServer(t, ['--port', String(port), '--requirepass', 'the-right-auth-string'])
  t.match(await pages(t, { ...base, port, password: 'the-right-auth-string' }), { caches: ['miss', 'hit'], hints: [] })
  const wrong = await pages(t, { ...base, port, password: 'a-wrong-one' })
  t.same(wrong.caches, ['bypass', 'bypass'])
  t.equal(wrong.hints.length, 1, 'one line for the outage, not one per request')
  t.match(wrong.hints[0], /refused the AUTH string: check REDIS_AUTH/, 'naming the variable to check')
  t.match(await pages(t, { ...base, port }), { caches: ['bypass', 'bypass'], hints: [/requires AUTH: set REDIS_AUTH/] })
})

t.test('TLS: the instance\'s CA verifies the server; another CA is refused and logged; a plain client gets nothing', async (t) => {
  const dir = t.testdir({})
  const server = certificates(dir, 'server')
  const stranger = certificates(dir, 'stranger')
  const port = await freePort()
  await redisServer(t, ['--port', '0', '--tls-port', String(port), '--tls-cert-file', server.cert, '--tls-key-file', server.key,
    '--tls-ca-cert-file', server.ca, '--tls-auth-clients', 'no'])
  t.match(await pages(t, { ...base, port, tlsCaFile: server.ca }), { caches: ['miss', 'hit'], hints: [] })
  const untrusted = await pages(t, { ...base, port, tlsCaFile: stranger.ca })
  t.same(untrusted.caches, ['bypass', 'bypass'])
  t.equal(untrusted.hints.length, 1)
  t.match(untrusted.hints[0], /certificate is not trusted: check REDIS_TLS_CA_FILE/)
  const plain = await pages(t, { ...base, port })
  t.same(plain.caches, ['bypass', 'bypass'], 'TLS on the server, plain client: served without the cache')
})

t.test('configuration: the CA file must exist, and the AUTH string is never repeated in an error', async (t) => {
  t.throws(() => loadConfig({ REDISHOST: 'r', REDIS_TLS_CA_FILE: '/nonexistent/server-ca.pem' }),
    { name: 'ConfigError', message: 'Invalid configuration: REDIS_TLS_CA_FILE="/nonexistent/server-ca.pem" is invalid: no such file' })
  const config = loadConfig({ REDISHOST: '10.0.0.3', REDISPORT: '6378', REDIS_AUTH: 'secret-auth' })
  t.match(config.redis, { host: '10.0.0.3', port: 6378, password: 'secret-auth' })
  const err = t.throws(() => loadConfig({ REDISPORT: 'x', REDIS_AUTH: 'secret-auth' })) as ConfigError
  t.notMatch(err.message, /secret-auth/)
})
