import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Cache, ListEntry, ListLookup, ListState, Subscription } from '../cache/index.js'
import type { VisitsRepository } from './repository.js'
import type { StoredVisit, Visit } from './visit.js'

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
export type CacheOutcome = 'hit' | 'update' | 'miss' | 'bypass'

export interface RecentVisitsResult {
  /** The same array for every page served from one version of the in-process copy. */
  visits: readonly Visit[]
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

interface VisitOptions {
  /** Runs before a visit is stored (never for a hit or a refresh); may throw to refuse it. */
  beforeWrite?: () => Promise<void>
}

/** A version of the list held in the process. */
interface Snapshot {
  visits: readonly Visit[]
  version: number
  /** Epoch milliseconds at which the list expires in the store. */
  expiresAt: number
}

type Known = Extract<ListLookup<string>, { status: 'ready' }>

/** A visit built by the building instance lives this long past its budget before others rebuild. */
const LOCK_MARGIN_SECONDS = 2
/** How often a request waiting for another instance's build looks again. */
const WAIT_POLL_MS = 15

/**
 * The App Engine "Module 12/13" visits logic: a visitor who is already the newest entry
 * of the cached list is served from the cache and stores nothing; anyone else stores a visit.
 *
 * The cached list is kept current rather than rewritten: every stored visit is merged into
 * it atomically (concurrent writers on any instance lose nothing), so a new visitor costs one
 * Firestore write and no read. When the list is missing one instance rebuilds it from one
 * Firestore query, the others wait for it; visits stored meanwhile are merged into the list
 * being built. A rebuild decides refreshes as before: when Firestore's newest visit is this
 * visitor's and younger than the TTL, nothing is stored.
 *
 * In front of the store, each process holds the latest version it has seen, kept only while
 * it hears the store's change announcements: a hit then costs no round trip at all.
 */
export class RecentVisits {
  readonly #repository: VisitsRepository
  readonly #cache: Cache
  readonly #limit: number
  readonly #ttlSeconds: number
  readonly #key: string
  readonly #budgetMs: number
  /** Concurrent non-hits by one visitor share one round. */
  readonly #inFlight = new Map<string, Promise<RecentVisitsResult>>()
  /** One wait per process for another instance's build. */
  #waiting: Promise<Known | undefined> | undefined
  /** A visit was stored while the cached list could not be updated: that list misses it. */
  #cachedListStale = false
  #local: Snapshot | undefined
  /** The newest version announced; an older one is never taken as current. */
  #announced = 0
  readonly #subscription: Subscription

  constructor ({ repository, cache, limit, ttlSeconds, key, budgetMs }: RecentVisitsOptions) {
    this.#repository = repository
    this.#cache = cache
    this.#limit = limit
    this.#ttlSeconds = ttlSeconds
    this.#key = key
    this.#budgetMs = budgetMs
    this.#subscription = cache.subscribe(key, {
      message: (message) => {
        const version = Number(message)
        if (Number.isFinite(version)) this.#announced = Math.max(this.#announced, version)
        // Our own change (the copy is already that version) keeps the copy; anything else drops it.
        if (!(Number.isFinite(version) && this.#local !== undefined && this.#local.version >= version)) this.#local = undefined
      },
      reset: () => { this.#local = undefined }
    })
  }

  /** Stops listening to the store's announcements. */
  async close (): Promise<void> {
    this.#local = undefined
    await this.#subscription.close()
  }

  /**
   * The list, without waiting for anything, when this visitor is the newest of the in-process
   * copy: a hit of the first tier (counted as a hit of the namespace). Otherwise undefined.
   */
  hit (visitor: string): readonly Visit[] | undefined {
    const local = this.#current()
    if (local === undefined || local.visits[0]?.visitor !== visitor) return undefined
    this.#cache.counters().hits++
    return local.visits
  }

  async visit (visitor: string, { beforeWrite }: VisitOptions = {}): Promise<RecentVisitsResult> {
    const fast = this.hit(visitor)
    if (fast !== undefined) return { visits: fast, cache: 'hit' }
    const known = this.#current() ?? this.#toSnapshot(await this.#read())
    if (known !== undefined && known !== 'unavailable' && known.visits[0]?.visitor === visitor) return { visits: known.visits, cache: 'hit' }
    const pending = this.#inFlight.get(visitor)
    if (pending !== undefined) return await pending
    const round = this.#decide(visitor, beforeWrite, known).finally(() => this.#inFlight.delete(visitor))
    this.#inFlight.set(visitor, round)
    return await round
  }

  /**
   * Stores a visit stamped now, but after the last visit this process stored: visits are ordered
   * by time (ties by id, as Firestore orders them), and a visit must come after the one it
   * follows. Only a process storing over 1,000 visits a second runs ahead of the wall clock, until
   * the burst ends; a failed write moves nothing.
   */
  async #add (visitor: string, after: Visit | undefined, deadline: number): Promise<StoredVisit> {
    const visit = { id: visitId(visitor, after), visitor, timestamp: new Date(Math.max(Date.now(), this.#lastStoredMs + 1)) }
    await this.#repository.add(visit.id, { visitor, timestamp: visit.timestamp }, { deadline })
    this.#lastStoredMs = Math.max(this.#lastStoredMs, visit.timestamp.getTime())
    return visit
  }

  #lastStoredMs = 0

  /** The in-process copy, while it is known to be current. */
  #current (): Snapshot | undefined {
    const local = this.#local
    if (local === undefined || !this.#subscription.live || this.#cachedListStale) return undefined
    if (Date.now() >= local.expiresAt) {
      this.#local = undefined
      return undefined
    }
    return local
  }

  /** The cached list when it is ready; undefined when missing or being built. */
  async #read (): Promise<Known | undefined | 'unavailable'> {
    let list = await this.#cache.listGet<string>(this.#key)
    if (this.#cachedListStale && list.status !== 'unavailable') {
      const dropped = await this.#cache.delete(this.#key)
      if (dropped !== 'failed') {
        this.#cachedListStale = false
        await this.#cache.announce(this.#key)
      }
      list = dropped === 'failed' ? { status: 'unavailable' } : { status: 'miss' }
    }
    if (list.status === 'unavailable') return 'unavailable'
    return list.status === 'ready' ? list : undefined
  }

  async #decide (visitor: string, beforeWrite: VisitOptions['beforeWrite'], known: Snapshot | undefined | 'unavailable'): Promise<RecentVisitsResult> {
    const deadline = Date.now() + this.#budgetMs
    if (known === 'unavailable') return await this.#withoutCache(visitor, deadline, beforeWrite)
    if (known !== undefined) return await this.#store(visitor, known.visits, deadline, beforeWrite)
    return await this.#rebuild(visitor, deadline, beforeWrite)
  }

  /** A new visit on a current list: one write, merged into the list. */
  async #store (visitor: string, visits: readonly Visit[], deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult> {
    await beforeWrite?.()
    const visit = await this.#add(visitor, visits[0], deadline)
    const merged = await this.#cache.listAdd(this.#key, [this.#entry(visit)], { limit: this.#limit })
    if (merged.status === 'ready') return { visits: this.#remember(merged).visits, cache: 'update' }
    if (merged.status === 'unavailable') this.#markStale()
    if (merged.status === 'miss') {
      // Gone from the store without a word (evicted, or expired early): every copy lacks this visit.
      this.#local = undefined
      await this.#cache.announce(this.#key)
    }
    // Missing or being rebuilt: the next request finds it rebuilt.
    const shown = merged.status === 'building' ? this.#visitsOf(merged) : [visit, ...visits].slice(0, this.#limit)
    return { visits: shown, cache: merged.status === 'unavailable' ? 'bypass' : 'update' }
  }

  /** No list: build it from one query, or wait for the instance building it. */
  async #rebuild (visitor: string, deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult> {
    const lockSeconds = Math.ceil(this.#budgetMs / 1000) + LOCK_MARGIN_SECONDS
    const begun = await this.#cache.listBegin<string>(this.#key, { lockSeconds })
    if (begun.status === 'unavailable' || begun.status === 'miss') return await this.#withoutCache(visitor, deadline, beforeWrite)
    if (begun.began !== true) {
      const built = begun.status === 'ready' ? begun : await this.#awaitBuilt(deadline)
      if (built === undefined) return await this.#withoutCache(visitor, deadline, beforeWrite)
      const snapshot = this.#remember(built)
      if (snapshot.visits[0]?.visitor === visitor) return { visits: snapshot.visits, cache: 'hit' }
      return await this.#store(visitor, snapshot.visits, deadline, beforeWrite)
    }

    const { latest, visit, ttl } = await this.#fromRepository(visitor, deadline, beforeWrite)
    const entries = (visit === undefined ? latest : [visit, ...latest]).map((v) => this.#entry(v))
    const built = await this.#cache.listAdd(this.#key, entries, { limit: this.#limit, complete: { ttl } })
    if (built.status === 'ready') return { visits: this.#remember(built).visits, cache: 'miss' }
    if (built.status === 'unavailable' && visit !== undefined) this.#markStale()
    const visits = (visit === undefined ? latest : [visit, ...latest]).slice(0, this.#limit)
    return { visits: visits.map(({ visitor, timestamp }) => ({ visitor, timestamp })), cache: built.status === 'unavailable' ? 'bypass' : 'miss' }
  }

  /** The cache cannot help: Firestore decides and answers alone. */
  async #withoutCache (visitor: string, deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult> {
    const { latest, visit } = await this.#fromRepository(visitor, deadline, beforeWrite)
    if (visit !== undefined) this.#markStale()
    const visits = (visit === undefined ? latest : [visit, ...latest]).slice(0, this.#limit)
    return { visits: visits.map(({ visitor, timestamp }) => ({ visitor, timestamp })), cache: 'bypass' }
  }

  /**
   * Reads the latest visits, and stores this one unless it is a refresh: the newest visit is
   * this visitor's and younger than the TTL. A refresh's list lives only as long as that visit is fresh.
   */
  async #fromRepository (visitor: string, deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<{ latest: StoredVisit[], visit?: StoredVisit, ttl: number }> {
    const latest = await this.#repository.latest(this.#limit, { deadline })
    const newest = latest[0]
    const age = newest === undefined ? Infinity : Date.now() - newest.timestamp.getTime()
    if (newest !== undefined && newest.visitor === visitor && age < this.#ttlSeconds * 1000) {
      return { latest, ttl: Math.max(1, this.#ttlSeconds - Math.floor(age / 1000)) }
    }
    await beforeWrite?.()
    return { latest, visit: await this.#add(visitor, newest, deadline), ttl: this.#ttlSeconds }
  }

  /** Waits, up to the deadline and the lock, for the instance building the list. */
  async #awaitBuilt (deadline: number): Promise<Known | undefined> {
    this.#waiting ??= (async () => {
      const until = Math.min(deadline, Date.now() + (Math.ceil(this.#budgetMs / 1000) + LOCK_MARGIN_SECONDS) * 1000)
      while (Date.now() < until) {
        await sleep(WAIT_POLL_MS)
        const list = await this.#cache.listGet<string>(this.#key)
        if (list.status === 'ready') return list
        if (list.status !== 'building') return undefined
      }
      return undefined
    })().finally(() => { this.#waiting = undefined })
    return await this.#waiting
  }

  #markStale (): void {
    this.#cachedListStale = true
    this.#local = undefined
  }

  #entry ({ id, visitor, timestamp }: StoredVisit): ListEntry<string> {
    return { id, order: timestamp.getTime(), value: visitor }
  }

  #visitsOf (list: ListState<string>): Visit[] {
    return list.items.map(({ order, value }) => ({ visitor: value, timestamp: new Date(order) }))
  }

  #toSnapshot (known: Known | undefined | 'unavailable'): Snapshot | undefined | 'unavailable' {
    return known === undefined || known === 'unavailable' ? known : this.#remember(known)
  }

  /** Keeps the version as the in-process copy, unless a newer one was announced meanwhile. */
  #remember (list: Known): Snapshot {
    const local = this.#local
    if (local !== undefined && local.version === list.version) return local
    const snapshot = {
      visits: this.#visitsOf(list),
      version: list.version,
      expiresAt: list.ttlMs < 0 ? Infinity : Date.now() + list.ttlMs
    }
    if (this.#subscription.live && list.version >= this.#announced && !this.#cachedListStale) this.#local = snapshot
    return snapshot
  }
}
