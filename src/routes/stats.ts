import type { FastifyInstance } from 'fastify'
import type { Cache } from '../cache/index.js'
import type { RepositoryUsage } from '../visits/repository.js'
import { hitRatioChart, HitRatioHistory } from '../stats/hit-ratio.js'
import { prefersJson } from './visits.js'

export interface StatsRoutesOptions {
  cache: Cache
  /** Namespaces always listed; any other this instance has read from is listed too. */
  namespaces: readonly string[]
  /** How often this instance samples its hit ratio for the chart. */
  sampleEveryMs?: number
  /** What this instance has asked of the visits' database. */
  visitsUsage: Readonly<RepositoryUsage>
}

export default async function statsRoutes (app: FastifyInstance, { cache, namespaces, sampleEveryMs = 10_000, visitsUsage }: StatsRoutesOptions): Promise<void> {
  const history = new HitRatioHistory(cache, { intervalMs: sampleEveryMs })
  history.start()
  app.addHook('onClose', async () => { history.stop() })

  // Counting items scans the store: one scan per 10 s at most, however often the page is asked for.
  const rowsOnce = cache.memoize(async function cacheStatsRows () {
    const names = [...new Set([...namespaces, ...cache.namespaces()])].sort()
    return await Promise.all(names.map(async (namespace) => {
      const stats = await cache.getStats({ namespace })
      const reads = stats.hits + stats.misses
      return { namespace, ...stats, hitRatio: reads === 0 ? null : stats.hits / reads }
    }))
  }, { ttl: 10, namespace: `${cache.namespace}/stats-page` })

  app.get('/stats', async (request, reply) => {
    const rows = await rowsOnce()
    reply.header('cache-control', 'no-store').header('vary', 'Accept')
    const samples = history.samples()
    if (prefersJson(request)) return { namespaces: rows, history: samples, instance: { visits: visitsUsage } }
    return await reply.viewAsync('stats', { rows, chart: hitRatioChart(samples), minutes: Math.round(samples.length * sampleEveryMs / 60_000) })
  })
}
