import type { FastifyInstance } from 'fastify'
import type { RepositoryUsage } from '../plugins/firestore-collection.js'
import { describeSpan, hitRatioChart, HitRatioHistory } from './hit-ratio.js'
import { prefersJson } from '../http/negotiation.js'
import { statsPageNamespace } from './cache-keys.js'

export interface StatsOptions {
  /** The features' namespaces, always listed with the pages' and fragments'; any other this instance has read from is listed too. */
  namespaces: readonly string[]
  /** How often this instance samples its hit ratio for the chart. */
  sampleEveryMs?: number
  /** What this instance has asked of the visits' database. */
  visitsUsage: Readonly<RepositoryUsage>
}

/** How long a count of the cache is shown before it is made again. */
const COUNT_TTL_SECONDS = 10

/** The cache's counts per namespace, and this instance's hit ratio over the last minutes. */
export default async function statsPlugin (app: FastifyInstance, { namespaces, sampleEveryMs = 10_000, visitsUsage }: StatsOptions): Promise<void> {
  // Counting items scans the keyspace: a read replica takes that load off the primary.
  const cache = app.cache.namespaced(app.cache.namespace, { reads: 'replica' })
  const history = new HitRatioHistory(cache, { intervalMs: sampleEveryMs })
  history.start()
  app.addHook('onClose', async () => { history.stop() })

  // Counting items scans the store: one scan per 10 s at most, however often the page is asked for.
  // The time of the count is kept with it, as the page may show a count up to 10 s old.
  const countedOnce = cache.memoize(async function countCacheStats () {
    const names = [...new Set([...namespaces, app.routeCache.cache.namespace, app.fragments.namespace, ...cache.namespaces()])].sort()
    const rows = await Promise.all(names.map(async (namespace) => {
      const stats = await cache.getStats({ namespace })
      const reads = stats.hits + stats.misses
      return { namespace, ...stats, hitRatio: reads === 0 ? null : stats.hits / reads }
    }))
    return { rows, computedAt: new Date() }
  }, { ttl: COUNT_TTL_SECONDS, namespace: statsPageNamespace(cache.namespace) })

  app.get('/stats', async (request, reply) => {
    const { rows, computedAt } = await countedOnce()
    reply.header('cache-control', 'no-store').header('vary', 'Accept')
    const samples = history.samples()
    if (prefersJson(request)) return { namespaces: rows, computedAt, history: samples, instance: { visits: visitsUsage } }
    const now = new Date()
    return await reply.viewAsync('stats/stats', {
      rows,
      computedAt,
      countedAgo: now.getTime() - computedAt.getTime() < 1000 ? 'just now' : `${describeSpan(now.getTime() - computedAt.getTime())} ago`,
      recountEvery: describeSpan(COUNT_TTL_SECONDS * 1000),
      chart: hitRatioChart(samples, { now, intervalMs: sampleEveryMs }),
      window: samples.length === 0 ? undefined : describeSpan(samples.length * sampleEveryMs),
      sampleEvery: describeSpan(sampleEveryMs),
      lastSample: samples.at(-1)?.at
    })
  })
}
