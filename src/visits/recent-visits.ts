import { createHash } from 'node:crypto'
import type { Cache, Lookup } from '../cache/index.js'
import type { VisitsRepository } from './repository.js'
import type { Visit } from './visit.js'

/**
 * A visit's id follows from who visits and which visit they saw as the newest, so
 * a retried write, a refresh during an outage, or the same visit stored by two
 * instances at once all name the same document and store it once.
 */
export function visitId (visitor: string, after: Visit | undefined): string {
  const predecessor = after === undefined ? '' : `${after.timestamp.toISOString()} ${after.visitor}`
  return createHash('sha256').update(predecessor).update('\n').update(visitor).digest('base64url')
}

/** How a page's list was obtained; sent to clients as the x-cache header. */
export type CacheOutcome = 'hit' | 'miss' | 'bypass'

export interface RecentVisitsResult {
  visits: Visit[]
  cache: CacheOutcome
}

export interface RecentVisitsOptions {
  repository: VisitsRepository
  cache: Cache
  /** Visits shown, and cached (10 in the App Engine sample). */
  limit: number
  /** Seconds the list stays cached (an hour in the App Engine sample). */
  ttlSeconds: number
  /** Cache key of the list, unique per collection. */
  key: string
}

/**
 * The App Engine "Module 12/13" visits logic: a visitor who is already the newest
 * entry of the cached list is served from the cache and stores nothing; anyone
 * else records a visit, and the fresh list is cached.
 *
 * Without a cached list (expired, evicted, cache down) the repository decides:
 * when its newest visit is this visitor's and younger than the TTL, the request is
 * a refresh and nothing is stored, so losing the cache never duplicates visits.
 */
export class RecentVisits {
  readonly #repository: VisitsRepository
  readonly #cache: Cache
  readonly #limit: number
  readonly #ttlSeconds: number
  readonly #key: string
  /** Concurrent refreshes by one visitor share one repository round, so a double request stores one visit. */
  readonly #inFlight = new Map<string, Promise<RecentVisitsResult>>()

  constructor ({ repository, cache, limit, ttlSeconds, key }: RecentVisitsOptions) {
    this.#repository = repository
    this.#cache = cache
    this.#limit = limit
    this.#ttlSeconds = ttlSeconds
    this.#key = key
  }

  async visit (visitor: string, now: Date = new Date()): Promise<RecentVisitsResult> {
    const cached = await this.#cache.lookup<Visit[]>(this.#key)
    if (cached.status === 'hit' && Array.isArray(cached.value) && cached.value[0]?.visitor === visitor) {
      return { visits: cached.value, cache: 'hit' }
    }
    const pending = this.#inFlight.get(visitor)
    if (pending !== undefined) return await pending
    const refresh = this.#refresh(visitor, now, cached).finally(() => this.#inFlight.delete(visitor))
    this.#inFlight.set(visitor, refresh)
    return await refresh
  }

  async #refresh (visitor: string, now: Date, cached: Lookup<Visit[]>): Promise<RecentVisitsResult> {
    let visits: Visit[] | undefined
    let newest: Visit | undefined
    if (cached.status === 'hit') {
      newest = cached.value[0]
    } else {
      const latest = await this.#repository.latest(this.#limit)
      newest = latest[0]
      if (this.#isRefresh(newest, visitor, now)) visits = latest
    }
    if (visits === undefined) {
      await this.#repository.add(visitId(visitor, newest), { visitor, timestamp: now })
      visits = await this.#repository.latest(this.#limit)
    }
    if (cached.status === 'unavailable') return { visits, cache: 'bypass' }
    const stored = await this.#cache.set(this.#key, visits, { ttl: this.#ttlSeconds })
    return { visits, cache: stored ? 'miss' : 'bypass' }
  }

  #isRefresh (newest: Visit | undefined, visitor: string, now: Date): boolean {
    return newest !== undefined &&
      newest.visitor === visitor &&
      now.getTime() - newest.timestamp.getTime() < this.#ttlSeconds * 1000
  }
}
