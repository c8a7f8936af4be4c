import t from 'tap'
import { createCache, MemoryStore } from '@visitme/memcache'
import { describeSpan, hitRatioChart, HitRatioHistory } from '../../src/stats/hit-ratio.js'
import { visitsNamespace } from '../../src/visits/cache-keys.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { redisReady, testRedis } from '../helpers/services.js'

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
    const visits = body.namespaces.find((row) => row.namespace === visitsNamespace(config.cacheNamespace))!
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
    t.match(page.body, `<td>${visitsNamespace(config.cacheNamespace)}</td>`)
    t.match(page.body, /<svg [^>]*role="img" aria-label="Cache hit ratio: no samples yet">/, 'the first sample is 10 s away')
    t.match(page.body, '<h2>Hit ratio, this instance</h2>')
    t.match(page.body, /Sampled every 10 seconds; the time axis ends when this page was made\./)
    // The count is made at most every 10 s: the page and the JSON say when.
    const computedAt = (json.json() as { computedAt: string }).computedAt
    t.match(computedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.match(page.body, `Counted at <time datetime="${computedAt}">${computedAt.slice(11, 19)} UTC</time> (`)
    t.match(page.body, /\((just now|\d+ seconds? ago)\); counted again at most every 10 seconds\./)
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

t.test('the chart: the ratio over time, on a time axis that ends now', async (t) => {
  const now = new Date(30_000)
  const svg = hitRatioChart([
    { at: new Date(10_000), hitRatio: 0 },
    { at: new Date(20_000), hitRatio: null },
    { at: new Date(30_000), hitRatio: 1 }
  ], { now, intervalMs: 10_000, width: 200, height: 100 })
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" viewBox="0 0 200 100"/)
  t.match(svg, /<polyline points="94\.0,70\.0 186\.0,10\.0" class="ratio"\/>/, 'two points: 0 % low, 100 % high at the right end')
  t.match(svg, /aria-label="Cache hit ratio over the last 30 seconds"/, 'three samples of 10 s')
  const ticks = (chart: string) => [...chart.matchAll(/<text [^>]*text-anchor="(?:middle|end)">([^<]*)<\/text>/g)].map((m) => m[1]).filter((l) => !l!.endsWith('%'))
  t.same(ticks(svg), ['now', '−10 s', '−20 s', '−30 s'], 'the time axis, labelled back from now')

  const minutes = (n: number) => Array.from({ length: n }, (_, i) => ({ at: new Date(1_000_000 + i * 10_000), hitRatio: 0.5 }))
  const fifteen = hitRatioChart(minutes(90), { now: new Date(1_000_000 + 89 * 10_000), intervalMs: 10_000 })
  t.match(fifteen, /aria-label="Cache hit ratio over the last 15 minutes"/)
  t.same(ticks(fifteen), ['now', '−5 min', '−10 min', '−15 min'])
  t.match(hitRatioChart(minutes(6), { now: new Date(1_050_000), intervalMs: 10_000 }), /over the last 1 minute"/, 'singular')
  t.match(hitRatioChart(minutes(1), { now: new Date(1_000_000), intervalMs: 10_000 }), /over the last 10 seconds"/)
  t.match(hitRatioChart([{ at: new Date(0), hitRatio: null }], { now: new Date(0), intervalMs: 10_000 }), /no reads yet/)
  const empty = hitRatioChart([], { now: new Date(0), intervalMs: 10_000 })
  t.match(empty, /aria-label="Cache hit ratio: no samples yet"/)
  t.match(empty, />no samples yet</)
})

t.test('durations in words: seconds under a minute, singular and plural', async (t) => {
  t.same([0, 1000, 59_000, 60_000, 90_000, 120_000, 900_000].map(describeSpan),
    ['0 seconds', '1 second', '59 seconds', '1 minute', '2 minutes', '2 minutes', '15 minutes'])
})
