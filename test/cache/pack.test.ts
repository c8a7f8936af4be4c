import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { redisTarget, uniqueName } from '../helpers/services.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/**
 * What a team would write after `npm install @visitme/memcache`: plain Node, no Fastify, no
 * Firestore, no TypeScript. It prints one JSON line of what each store answered.
 */
const SCRIPT = `
import { createCache, createRedisClient, clientReady, MemoryStore, RedisStore, UncacheableValueError } from '@visitme/memcache'
import { CacheSessionStore } from '@visitme/memcache/session'
import { storeContract } from '@visitme/memcache/contract'

const [host, port, namespace] = process.argv.slice(2)

async function exercise (store) {
  const cache = createCache({ store, namespace })
  const answers = {}
  answers.set = await cache.set('greeting', { text: 'hello', at: new Date(0), big: 2n ** 64n })
  const read = await cache.get('greeting')
  answers.typesKept = read.at instanceof Date && read.big === 2n ** 64n && read.text === 'hello'
  answers.add = [await cache.add('once', 1), await cache.add('once', 2)]
  // A missing counter starts from initialValue, and is then incremented, as in memcache.
  answers.incr = [await cache.incr('counter', { initialValue: 10 }), await cache.incr('counter', { delta: 5 })]
  answers.decrFloor = await cache.decr('counter', { delta: 100 })
  const item = await cache.gets('greeting')
  answers.cas = [await cache.cas('greeting', 'new', item.casToken), await cache.cas('greeting', 'newer', item.casToken)]
  answers.delete = [await cache.delete('once', { lockSeconds: 30 }), await cache.add('once', 3), await cache.delete('nothing')]
  let runs = 0
  const square = cache.memoize(async function square (n) { runs++; return n * n }, { ttl: 60 })
  answers.memoize = [await square(4), await square(4), runs]
  answers.refused = await cache.set('regexp', /x/).then(() => 'stored', (err) => err instanceof UncacheableValueError)
  const sessions = new CacheSessionStore(cache)
  await new Promise((resolve, reject) => sessions.set('s1', { cookie: { maxAge: 60_000 }, user: 'a' }, (err) => err ? reject(err) : resolve()))
  answers.session = await new Promise((resolve, reject) => sessions.get('s1', (err, s) => err ? reject(err) : resolve(s?.user)))
  answers.stats = await cache.getStats()
  await cache.close()
  return answers
}

const client = createRedisClient({ host, port: Number(port) })
await clientReady(client, AbortSignal.timeout(5000))
const connected = RedisStore.connect({ host, port: Number(port) })
await clientReady(connected.client, AbortSignal.timeout(5000))
const result = {
  contract: typeof storeContract,
  memory: await exercise(new MemoryStore()),
  redis: await exercise(new RedisStore(client)),
  // The store that makes its own client gets the fail-fast settings: no offline queue, a command timeout.
  connectedSettings: [connected.client.options.enableOfflineQueue, connected.client.options.commandTimeout]
}
client.disconnect()
await connected.client.quit()
console.log(JSON.stringify(result))
`

t.test('the packed package installs into a project of its own and works there, on Redis and in memory', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'memcache-pack-'))
  t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

  // npm pack runs the package's prepack: the tarball holds a fresh build.
  const packed = await run(npm, ['pack', '--workspace', '@visitme/memcache', '--pack-destination', work, '--json'], { cwd: root, maxBuffer: 16 * 2 ** 20 })
  const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string, files: Array<{ path: string }> }]
  const paths = files.map((f) => f.path)
  for (const expected of ['package.json', 'README.md', 'CHANGELOG.md', 'dist/index.js', 'dist/index.d.ts', 'dist/plugin.d.ts', 'dist/session-store.d.ts', 'dist/contract/index.d.ts']) {
    t.ok(paths.includes(expected), `the tarball has ${expected}`)
  }
  t.notOk(paths.some((p) => p.startsWith('src/')), 'and no sources')

  // A project outside the repository: nothing resolves from the workspace.
  const project = join(work, 'project')
  await mkdir(project)
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }))
  await run(npm, ['install', join(work, filename.replace(/^.*\//, '')), '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: project, maxBuffer: 16 * 2 ** 20 })
  t.same(await readdir(join(project, 'node_modules', '@visitme')), ['memcache'])
  await writeFile(join(project, 'try.mjs'), SCRIPT)

  const { host, port } = redisTarget()
  const { stdout } = await run(process.execPath, ['try.mjs', host, String(port), uniqueName('pack')], { cwd: project, env: { PATH: process.env.PATH ?? '' } })
  const result = JSON.parse(stdout) as Record<string, unknown>
  t.equal(result.contract, 'function', 'the contract suite is exported for other stores')
  t.same(result.connectedSettings, [false, 500], 'RedisStore.connect() makes a fail-fast client')
  for (const store of ['memory', 'redis']) {
    t.match(result[store], {
      set: true,
      typesKept: true,
      add: [true, false],
      incr: [11, 16],
      decrFloor: 0,
      cas: [true, false],
      delete: ['deleted', false, 'missing'],
      memoize: [16, 16, 1],
      refused: true,
      session: 'a',
      stats: { hits: Number, misses: Number, items: Number }
    }, `${store}: memcache's answers`)
  }
})
