import t from 'tap'
import { createCache, MemoryStore } from '../../src/cache/index.js'
import { hitRatioChart, HitRatioHistory } from '../../src/stats/hit-ratio.js'
import { buildTestApp, redisReady, testConfig, testRedis } from '../helper.js'

interface Row { namespace: string, hits: number, misses: number, hitRatio: number | null, errors: number, items: number, bytes: number }

for (const backend of ['embedded', 'redis'] as const) {
  t.test(`/stats on the ${backend} cache: per-namespace numbers as JSON and as a page with a chart`, async (t) => {
    const config = testConfig()
    const app = await buildTestApp(t, config, backend === 'redis' ? { redis: await redisReady(testRedis(t)) } : {})
    const visit = (ua: string) => app.inject({ url: '/', headers: { 'user-agent': ua } })
    await visit('A') // miss
    await visit('A') // hit
    await visit('A') // hit

    const json = await app.inject({ url: '/stats', headers: { accept: 'application/json' } })
    t.equal(json.statusCode, 200)
    const body = json.json() as { namespaces: Row[], history: unknown[] }
    const visits = body.namespaces.find((row) => row.namespace === `${config.cacheNamespace}/visits`)!
    t.ok(visits, 'the visits namespace is listed')
    // Three pages, three reads of the list: the first missed, the next two found it.
    t.equal(visits.hits, 2)
    t.equal(visits.misses, 1)
    t.equal(visits.hitRatio, visits.hits / (visits.hits + visits.misses))
    t.ok(visits.items >= 1, 'the cached list is an item')
    t.ok(visits.bytes > 0)
    t.equal(visits.errors, 0)
    t.ok(body.namespaces.some((row) => row.namespace === `${config.cacheNamespace}/routes`))
    t.ok(Array.isArray(body.history))
    // One visit stored; the two hits asked nothing of the database.
    t.same((json.json() as { instance: unknown }).instance, { visits: { queries: 1, documentsRead: 1, writes: 1 } }, 'this instance\'s database usage')

    const page = await app.inject('/stats')
    t.match(page.headers['content-type'], /^text\/html/)
    t.match(page.body, /<h1>Cache stats<\/h1>/)
    t.match(page.body, `<td>${config.cacheNamespace}/visits</td>`)
    t.match(page.body, /<svg [^>]*role="img" aria-label="Cache hit ratio over the last \d+ minutes">/)
    t.match(page.body, /<a href="\/stats" aria-current="page">/, 'the nav marks the current page')
  })
}

t.test('the hit ratio history: one ratio per interval, bounded', async (t) => {
  const cache = createCache({ store: new MemoryStore(), namespace: 'h' })
  const history = new HitRatioHistory(cache, { size: 3 })
  history.start()
  history.stop()
  await cache.set('k', 1)
  await cache.get('k')
  await cache.get('k')
  await cache.get('k')
  await cache.get('missing')
  history.sample(new Date(60_000))
  history.sample(new Date(120_000))
  t.same(history.samples().map((s) => s.hitRatio), [0.75, null], 'three hits of four reads; then no reads')
  for (let i = 3; i < 8; i++) history.sample(new Date(i * 60_000))
  t.equal(history.samples().length, 3)
})

t.test('the chart is an SVG drawn from the samples', async (t) => {
  const svg = hitRatioChart([
    { at: new Date(0), hitRatio: 0 },
    { at: new Date(60_000), hitRatio: null },
    { at: new Date(120_000), hitRatio: 1 }
  ], { width: 200, height: 100 })
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
  t.match(svg, /<polyline points="28\.0,72\.0 172\.0,28\.0" class="ratio"\/>/, 'two points: 0 % at the left bottom, 100 % at the right top')
  t.match(svg, /aria-label="Cache hit ratio over the last 2 minutes"/)
  t.match(hitRatioChart([]), /no reads yet/)
})
