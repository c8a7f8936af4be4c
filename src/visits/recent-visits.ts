import { setTimeout as sleep } from 'node:timers/promises'
import { listItemId, type Cache, type ListEntry, type ListReservationLookup, type ListState, type Subscription } from '@visitme/memcache'
import { RepositoryUnavailableError } from '../plugins/bounded-calls.js'
import type { VisitsRepository } from './repository.js'
import type { StoredVisit, Visit } from './visit.js'

/**
 * A visit's id follows from who visits and which visit they follow, so a retried write, a
 * refresh during an outage, or the same visit decided by two instances at once all name the
 * same document and store it once. The list's reservations name visits alike (listItemId).
 */
export function visitId (visitor: string, after: { id: string } | undefined): string {
  return listItemId(after?.id ?? '', visitor)
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
  /** The stored visits: reserved ones are not shown before they are stored. */
  visits: readonly Visit[]
  /** The visitor whose reload stores nothing: the newest stored visit's, unless a visit of theirs is reserved above it. */
  newest: string | undefined
  version: number
  /** Epoch milliseconds at which the list expires in the store, or a reservation in it runs out. */
  expiresAt: number
}

/** A visit built by the building instance lives this long past its budget before others rebuild. */
const LOCK_MARGIN_SECONDS = 2
/** How often a request waiting for another instance's build looks again. */
const WAIT_POLL_MS = 15
/** How often a request waiting for its visitor's reserved visit to be stored looks again. */
const RESERVED_POLL_MS = 50
/**
 * After a write was given up on, how soon its instance looks whether it landed; each look waits
 * twice as long as the last, up to the maximum. It looks until it knows (reads are made only
 * while Firestore answers requests), or until the process stops.
 */
const SETTLE_POLL_MS = 100
const SETTLE_MAX_POLL_MS = 500
/** How long after a failed call its write may still land. */
const SETTLE_GRACE_MS = 10_000
/** How often a process retries merging the visits it stored while the cache could not answer. */
const STALE_RETRY_MS = 250

/**
 * The App Engine "Module 12/13" visits logic: a visitor who is already the newest entry
 * of the list is served from the cache and stores nothing; anyone else stores a visit.
 *
 * While the cache works, that decision is one atomic step in the store shared by every
 * instance (listReserve): a visitor who is not the newest reserves the head of the list under
 * the visit's id and timestamp, so a reload racing it on any instance finds the reservation
 * and stores nothing. The visit is then written to the repository and the stored document (its
 * timestamp included) settles the reservation. A new visitor costs one write and no read.
 * A write that fails gives its reservation up; if it may still land (a timeout, a lost
 * answer), its instance finds out and merges it. A reservation nobody settles or releases in
 * time (its writer stopped) drops the list, which is then rebuilt from the repository.
 *
 * When the list is missing one instance rebuilds it from one repository query, the others
 * wait for it. A rebuild decides as App Engine did: when the newest stored visit is this
 * visitor's and younger than the TTL, nothing is stored. When the cache cannot answer, the
 * repository decides alone.
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
  /** A reservation outlives the write's budget: one left longer belongs to a writer that stopped. */
  readonly #reserveSeconds: number
  /** Concurrent non-hits by one visitor share one round. */
  readonly #inFlight = new Map<string, Promise<RecentVisitsResult>>()
  /** One wait per process for another instance's build. */
  #waiting: Promise<ListState<string> | undefined> | undefined
  /** Visits stored while the cached list could not be updated: the list lacks them until they are merged. */
  readonly #unmerged = new Map<string, StoredVisit>()
  #repairing: Promise<void> | undefined
  #local: Snapshot | undefined
  /** The newest version announced; an older one is never taken as current. */
  #announced = 0
  readonly #subscription: Subscription
  /** Writes given up on whose outcome is still being found out. */
  readonly #settling = new Set<Promise<void>>()
  readonly #closing = new AbortController()
  #lastStoredMs = 0

  constructor ({ repository, cache, limit, ttlSeconds, key, budgetMs }: RecentVisitsOptions) {
    this.#repository = repository
    this.#cache = cache
    this.#limit = limit
    this.#ttlSeconds = ttlSeconds
    this.#key = key
    this.#budgetMs = budgetMs
    this.#reserveSeconds = Math.ceil(budgetMs / 1000) + LOCK_MARGIN_SECONDS
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

  /** Stops listening to the store's announcements, and stops finding out about writes given up on. */
  async close (): Promise<void> {
    this.#local = undefined
    this.#closing.abort()
    await Promise.all([...this.#settling, this.#repairing])
    await this.#subscription.close()
  }

  /**
   * The list, without waiting for anything, when this visitor is the newest of the in-process
   * copy: a hit of the first tier (counted as a hit of the namespace). Otherwise undefined.
   */
  hit (visitor: string): readonly Visit[] | undefined {
    const local = this.#current()
    if (local === undefined || local.newest !== visitor) return undefined
    // Named, so the console's hot keys count the first tier's hits too.
    this.#cache.recordHit({ key: this.#key })
    return local.visits
  }

  async visit (visitor: string, { beforeWrite }: VisitOptions = {}): Promise<RecentVisitsResult> {
    const fast = this.hit(visitor)
    if (fast !== undefined) return { visits: fast, cache: 'hit' }
    const pending = this.#inFlight.get(visitor)
    if (pending !== undefined) return await pending
    const round = this.#decide(visitor, beforeWrite).finally(() => this.#inFlight.delete(visitor))
    this.#inFlight.set(visitor, round)
    return await round
  }

  /** The in-process copy, while it is known to be current. */
  #current (): Snapshot | undefined {
    const local = this.#local
    if (local === undefined || !this.#subscription.live || this.#unmerged.size > 0) return undefined
    if (Date.now() >= local.expiresAt) {
      this.#local = undefined
      return undefined
    }
    return local
  }

  async #decide (visitor: string, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult> {
    const deadline = Date.now() + this.#budgetMs
    if (this.#unmerged.size > 0 && !await this.#mergeUnmerged()) return await this.#withoutCache(visitor, deadline, beforeWrite)
    // Each turn either answers or waits for another writer; the deadline ends the waiting.
    while (Date.now() < deadline) {
      const reserved = await this.#reserve(visitor)
      switch (reserved.status) {
        case 'unavailable':
          return await this.#withoutCache(visitor, deadline, beforeWrite)
        case 'same':
          return { visits: this.#remember(reserved).visits, cache: 'hit' }
        case 'reserved':
          return await this.#store(visitor, reserved, deadline, beforeWrite)
        case 'miss': {
          const built = await this.#rebuild(visitor, deadline, beforeWrite)
          if (built !== undefined) return built
          break
        }
        case 'building':
          if (await this.#awaitBuilt(deadline) === undefined) return await this.#withoutCache(visitor, deadline, beforeWrite)
          break
        case 'reserved-already':
          // This visitor's visit is being stored by a concurrent request: its outcome decides.
          this.#remember(reserved)
          await sleep(RESERVED_POLL_MS)
      }
    }
    throw new RepositoryUnavailableError('the visit could not be decided in time: a concurrent visit of this visitor is still being stored')
  }

  /** The shared decision for this visitor: newest already, or the head reserved for a new visit (see Cache.listReserve). */
  async #reserve (visitor: string): Promise<ListReservationLookup<string>> {
    return await this.#cache.listReserve<string>(this.#key, { value: visitor, seed: visitor, order: Date.now() }, {
      limit: this.#limit,
      reserveSeconds: this.#reserveSeconds
    })
  }

  /** A reserved visit: written, then settled in the list with the document as stored. */
  async #store (visitor: string, reserved: ListState<string> & { id: string, order: number }, deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult> {
    const before = this.#remember(reserved)
    try {
      await beforeWrite?.()
    } catch (err) {
      await this.#cache.listRelease(this.#key, reserved.id)
      throw err
    }
    const visit = await this.#write({ id: reserved.id, visitor, timestamp: new Date(reserved.order) }, deadline, { reserved: true })
    const merged = await this.#cache.listAdd(this.#key, [this.#entry(visit)], { limit: this.#limit })
    if (merged.status === 'ready') return { visits: this.#remember(merged).visits, cache: 'update' }
    if (merged.status === 'unavailable') this.#markUnmerged(visit)
    if (merged.status === 'miss') {
      // Gone from the store (evicted, or expired early): every copy lacks this visit.
      this.#local = undefined
      await this.#cache.announce(this.#key)
    }
    // Missing or being rebuilt: the next request finds it rebuilt.
    const visits = merged.status === 'building' ? this.#storedVisits(merged) : shown(newestFirst([visit, ...before.visits]).slice(0, this.#limit))
    return { visits, cache: merged.status === 'unavailable' ? 'bypass' : 'update' }
  }

  /** No list: build it from one query (undefined when another instance began first), or wait for the one building it. */
  async #rebuild (visitor: string, deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult | undefined> {
    const lockSeconds = Math.ceil(this.#budgetMs / 1000) + LOCK_MARGIN_SECONDS
    const begun = await this.#cache.listBegin<string>(this.#key, { lockSeconds })
    if (begun.status === 'unavailable' || begun.status === 'miss') return await this.#withoutCache(visitor, deadline, beforeWrite)
    if (begun.began !== true) {
      if (begun.status === 'building' && await this.#awaitBuilt(deadline) === undefined) return await this.#withoutCache(visitor, deadline, beforeWrite)
      return undefined
    }

    // A visit of this visitor reserved in the list that expired is still being written: its outcome decides, not this query.
    const inFlight = begun.reserved.count > 0 && (await this.#reserve(visitor)).status === 'reserved-already'
    const { latest, visit, ttl } = await this.#fromRepository(visitor, deadline, beforeWrite, { store: !inFlight })
    const visits = visit === undefined ? latest : [visit, ...latest]
    const built = await this.#cache.listAdd(this.#key, visits.map((v) => this.#entry(v)), { limit: this.#limit, complete: { ttl } })
    if (built.status === 'ready') {
      const snapshot = this.#remember(built)
      return inFlight ? undefined : { visits: snapshot.visits, cache: 'miss' }
    }
    if (built.status === 'unavailable' && visit !== undefined) this.#markUnmerged(visit)
    return { visits: shown(newestFirst(visits).slice(0, this.#limit)), cache: built.status === 'unavailable' ? 'bypass' : 'miss' }
  }

  /** The cache cannot help: the repository decides and answers alone. */
  async #withoutCache (visitor: string, deadline: number, beforeWrite: VisitOptions['beforeWrite']): Promise<RecentVisitsResult> {
    const { latest, visit } = await this.#fromRepository(visitor, deadline, beforeWrite)
    if (visit !== undefined) this.#markUnmerged(visit)
    const visits = visit === undefined ? latest : [visit, ...latest]
    return { visits: shown(newestFirst(visits).slice(0, this.#limit)), cache: 'bypass' }
  }

  /**
   * Reads the latest visits, and stores this one (unless told not to) unless it is a refresh: the
   * newest visit is this visitor's and younger than the TTL. A refresh's list lives only as long
   * as that visit is fresh.
   */
  async #fromRepository (visitor: string, deadline: number, beforeWrite: VisitOptions['beforeWrite'], { store = true } = {}): Promise<{ latest: StoredVisit[], visit?: StoredVisit, ttl: number }> {
    const latest = await this.#repository.latest(this.#limit, { deadline })
    const newest = latest[0]
    const age = newest === undefined ? Infinity : Date.now() - newest.timestamp.getTime()
    if (newest !== undefined && newest.visitor === visitor && age < this.#ttlSeconds * 1000) {
      return { latest, ttl: Math.max(1, this.#ttlSeconds - Math.floor(age / 1000)) }
    }
    if (!store) return { latest, ttl: this.#ttlSeconds }
    await beforeWrite?.()
    // After the visit it follows, and after the last one this process stored (a burst of over
    // 1,000 visits a second runs ahead of the clock until it ends).
    const timestamp = new Date(Math.max(Date.now(), (newest?.timestamp.getTime() ?? 0) + 1, this.#lastStoredMs + 1))
    const visit = await this.#write({ id: visitId(visitor, newest), visitor, timestamp }, deadline, { reserved: false })
    return { latest, visit, ttl: this.#ttlSeconds }
  }

  /** Writes the visit; answers it as stored, which may be an earlier write of the same id. */
  async #write (visit: StoredVisit, deadline: number, { reserved }: { reserved: boolean }): Promise<StoredVisit> {
    try {
      const stored = await this.#repository.add(visit.id, visit, { deadline })
      this.#lastStoredMs = Math.max(this.#lastStoredMs, stored.timestamp.getTime())
      return stored
    } catch (err) {
      await this.#settleLater(visit.id, err, reserved)
      throw err
    }
  }

  /**
   * A write failed. Its reservation is released at once: a retry names the same visit (same
   * visitor after the same stored visit, whether the list or Firestore alone decides it), so a
   * write that landed after all is found, not repeated.
   * Unless it was never sent, it may still land: this process finds out (the call's own
   * answer, or the document read back) and merges it into the list, so the list shows it
   * within moments of it landing (or of Firestore answering again), not when the list expires.
   */
  async #settleLater (id: string, err: unknown, reserved: boolean): Promise<void> {
    if (reserved) await this.#cache.listRelease(this.#key, id)
    const call = err instanceof RepositoryUnavailableError ? err.call : undefined
    if (call === undefined) return
    const settling: Promise<void> = this.#settle(id, call).finally(() => { this.#settling.delete(settling) })
    this.#settling.add(settling)
  }

  async #settle (id: string, call: Promise<unknown>): Promise<void> {
    let endedAt = Infinity
    let landed: StoredVisit | undefined
    call.then((visit) => { landed = visit as StoredVisit }, () => {}).finally(() => { endedAt = Date.now() })
    const { signal } = this.#closing
    for (let pause = SETTLE_POLL_MS; !signal.aborted; pause = Math.min(2 * pause, SETTLE_MAX_POLL_MS)) {
      await sleep(pause, undefined, { signal }).catch(() => {})
      if (signal.aborted) return
      const endedBefore = endedAt
      let found = landed
      if (found === undefined) {
        try {
          found = await this.#repository.find(id, { deadline: Date.now() + 1000, background: true })
        } catch {
          continue
        }
      }
      if (found !== undefined) {
        await this.#merge(found)
        return
      }
      // Not there a while after the call ended: it never will be. A request that reached
      // Firestore before its connection broke can still be committed after the call failed.
      if (Date.now() - endedBefore > SETTLE_GRACE_MS) return
    }
  }

  /** A visit found stored after its write was given up on. */
  async #merge (visit: StoredVisit): Promise<void> {
    const merged = await this.#cache.listAdd(this.#key, [this.#entry(visit)], { limit: this.#limit })
    if (merged.status === 'unavailable') this.#markUnmerged(visit)
  }

  /** Waits, up to the deadline and the lock, for the instance building the list. */
  async #awaitBuilt (deadline: number): Promise<ListState<string> | undefined> {
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

  /**
   * Merges the visits stored while the cache could not answer into the list, which keeps the
   * reservations of writes in flight (a deleted list would lose them). A list that is gone
   * needs nothing: it is built again from Firestore, which holds them. False while the cache
   * still cannot answer.
   */
  async #mergeUnmerged (): Promise<boolean> {
    const visits = [...this.#unmerged.values()]
    const merged = await this.#cache.listAdd(this.#key, visits.map((v) => this.#entry(v)), { limit: this.#limit })
    if (merged.status === 'unavailable') return false
    for (const visit of visits) this.#unmerged.delete(visit.id)
    return this.#unmerged.size === 0
  }

  /**
   * The list lacks a visit this process stored: it is merged as soon as the cache answers, by
   * the next request or by a retry in the background, whichever comes first, so that no
   * instance serves the list without it a moment longer than the cache's outage.
   */
  #markUnmerged (visit: StoredVisit): void {
    this.#unmerged.set(visit.id, visit)
    // Only the newest can be listed: the others would be dropped by the merge anyway.
    if (this.#unmerged.size > this.#limit) {
      const oldest = [...this.#unmerged.values()].reduce((a, b) => a.timestamp <= b.timestamp ? a : b)
      this.#unmerged.delete(oldest.id)
    }
    this.#local = undefined
    this.#repairing ??= this.#repair().finally(() => { this.#repairing = undefined })
  }

  async #repair (): Promise<void> {
    const { signal } = this.#closing
    while (this.#unmerged.size > 0 && !signal.aborted) {
      await sleep(STALE_RETRY_MS, undefined, { signal }).catch(() => {})
      if (this.#unmerged.size > 0 && !signal.aborted) await this.#mergeUnmerged()
    }
  }

  #entry ({ id, visitor, timestamp }: StoredVisit): ListEntry<string> {
    return { id, order: timestamp.getTime(), value: visitor }
  }

  #storedVisits (list: ListState<string>): Visit[] {
    return list.items.map(({ order, value }) => ({ visitor: value, timestamp: new Date(order) }))
  }

  /** Keeps the version as the in-process copy, unless a newer one was announced meanwhile. */
  #remember (list: ListState<string>): Snapshot {
    const local = this.#local
    if (local !== undefined && local.version === list.version) return local
    const snapshot = {
      visits: this.#storedVisits(list),
      // A visit of the newest visitor reserved above their stored one is being written: no hit decided here.
      newest: list.reserved.newestSettled ? undefined : list.items[0]?.value,
      version: list.version,
      expiresAt: Date.now() + Math.min(list.ttlMs < 0 ? Infinity : list.ttlMs, list.reserved.soonestMs ?? Infinity)
    }
    if (this.#subscription.live && list.version >= this.#announced && this.#unmerged.size === 0) this.#local = snapshot
    return snapshot
  }
}

function newestFirst<T extends Visit> (visits: T[]): T[] {
  return visits.sort((a, b) => b.timestamp.getTime() - a.timestamp.getTime())
}

/** Visits as pages show them, without their ids. */
function shown (visits: readonly Visit[]): Visit[] {
  return visits.map(({ visitor, timestamp }) => ({ visitor, timestamp }))
}
