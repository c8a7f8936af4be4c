import { createHash } from 'node:crypto'
import type { Cache } from '../cache/index.js'
import type { VisitsRepository } from './repository.js'
import type { Visit } from './visit.js'

/**
 * A visit's id follows from who visits and which visit they saw as the newest, so
 * a retried write, a refresh during an outage, or the same visit stored by two
 * instances at once all name the same document and store it once.
 */
function visitId (visitor: string, after: Visit | undefined): string {
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
  /** Repository time one request may use, its read and its write together. */
  budgetMs: number
}

/** A cached value is only trusted in the shape this code writes. */
function asVisits (value: unknown): Visit[] | undefined {
  const valid = Array.isArray(value) &&
    value.every((v) => typeof v?.visitor === 'string' && v?.timestamp instanceof Date)
  return valid ? value : undefined
}

/**
 * The App Engine "Module 12/13" visits logic: a visitor who is already the newest
 * entry of the cached list is served from the cache and stores nothing.
 *
 * Anyone else is decided by the repository, never by the cache, whose list can be
 * stale: when the repository's newest visit is this visitor's and younger than the
 * TTL, the request is a refresh and nothing is stored; otherwise the visit is
 * stored, and the list read plus this visit is cached.
 */
export class RecentVisits {
  readonly #repository: VisitsRepository
  readonly #cache: Cache
  readonly #limit: number
  readonly #ttlSeconds: number
  readonly #key: string
  readonly #budgetMs: number
  /** Concurrent refreshes by one visitor share one repository round. */
  readonly #inFlight = new Map<string, Promise<RecentVisitsResult>>()
  /** A visit was stored while the cached list could not be updated: that list misses it. */
  #cachedListStale = false

  constructor ({ repository, cache, limit, ttlSeconds, key, budgetMs }: RecentVisitsOptions) {
    this.#repository = repository
    this.#cache = cache
    this.#limit = limit
    this.#ttlSeconds = ttlSeconds
    this.#key = key
    this.#budgetMs = budgetMs
  }

  /**
   * `beforeWrite` runs before a visit is stored (never for a hit or a refresh) and may
   * throw to refuse it, as a rate limit does.
   */
  async visit (visitor: string, { now = new Date(), beforeWrite }: { now?: Date, beforeWrite?: () => Promise<void> } = {}): Promise<RecentVisitsResult> {
    let cached = await this.#cache.lookup<unknown>(this.#key)
    if (this.#cachedListStale && cached.status !== 'unavailable') {
      const dropped = await this.#cache.delete(this.#key)
      if (dropped !== 'failed') this.#cachedListStale = false
      cached = dropped === 'failed' ? { status: 'unavailable' } : { status: 'miss' }
    }
    if (cached.status === 'hit') {
      const visits = asVisits(cached.value)
      if (visits !== undefined && visits[0]?.visitor === visitor) return { visits, cache: 'hit' }
    }
    const pending = this.#inFlight.get(visitor)
    if (pending !== undefined) return await pending
    const refresh = this.#refresh(visitor, now, cached.status !== 'unavailable', beforeWrite)
      .finally(() => this.#inFlight.delete(visitor))
    this.#inFlight.set(visitor, refresh)
    return await refresh
  }

  async #refresh (visitor: string, now: Date, cacheAnswers: boolean, beforeWrite?: () => Promise<void>): Promise<RecentVisitsResult> {
    const deadline = Date.now() + this.#budgetMs
    const latest = await this.#repository.latest(this.#limit, { deadline })
    const newest = latest[0]
    let visits = latest
    let ttl = this.#ttlSeconds
    let stored = false
    if (newest !== undefined && newest.visitor === visitor && now.getTime() - newest.timestamp.getTime() < ttl * 1000) {
      // A refresh: the list lives only as long as the visit it repeats is fresh.
      ttl = Math.max(1, ttl - Math.floor((now.getTime() - newest.timestamp.getTime()) / 1000))
    } else {
      await beforeWrite?.()
      const visit = { visitor, timestamp: now }
      await this.#repository.add(visitId(visitor, newest), visit, { deadline })
      visits = [visit, ...latest].slice(0, this.#limit)
      stored = true
    }
    const cachedNow = cacheAnswers && await this.#cache.set(this.#key, visits, { ttl })
    if (stored && !cachedNow) this.#cachedListStale = true
    return { visits, cache: cachedNow ? 'miss' : 'bypass' }
  }
}
