import type { RepositoryUsage } from '../plugins/firestore-collection.js'
import type { VisitsRepository } from './repository.js'
import { allShards, compareNames, mergeNewest, shardOf } from './shards.js'
import type { StoredVisit, Visit } from './visit.js'

/**
 * Visits held in the process: the embedded default, lost on restart, bounded in size. With several
 * shards it answers as the databases do, one query per shard merged: the same merge, tested without one.
 */
export class MemoryVisitsRepository implements VisitsRepository {
  readonly kind = 'memory'
  readonly usage: RepositoryUsage = { queries: 0, documentsRead: 0, writes: 0 }
  readonly #visits: Array<Visit & { id: string }> = []
  readonly #capacity: number
  readonly shards: number

  constructor ({ capacity = 1000, shards = 1 }: { capacity?: number, shards?: number } = {}) {
    this.#capacity = capacity
    this.shards = shards
  }

  async add (id: string, visit: Visit): Promise<StoredVisit> {
    this.usage.writes++
    // Looked up without yielding: a concurrent add of the same id finds this one.
    const stored = this.#visits.find((visit) => visit.id === id)
    if (stored !== undefined) return { id, visitor: stored.visitor, timestamp: new Date(stored.timestamp) }
    // Newest first; visits almost always arrive in order, so this rarely walks far.
    let at = 0
    // Ties: the greater id first, as Firestore orders a descending query.
    while (at < this.#visits.length && (this.#visits[at]!.timestamp > visit.timestamp ||
      (this.#visits[at]!.timestamp.getTime() === visit.timestamp.getTime() && compareNames(this.#visits[at]!.id, id) > 0))) at++
    this.#visits.splice(at, 0, { id, visitor: visit.visitor, timestamp: new Date(visit.timestamp) })
    if (this.#visits.length > this.#capacity) this.#visits.length = this.#capacity
    return { id, visitor: visit.visitor, timestamp: new Date(visit.timestamp) }
  }

  async find (id: string): Promise<StoredVisit | undefined> {
    const stored = this.#visits.find((visit) => visit.id === id)
    return stored === undefined ? undefined : { id, visitor: stored.visitor, timestamp: new Date(stored.timestamp) }
  }

  async latest (limit: number): Promise<StoredVisit[]> {
    const copy = ({ id, visitor, timestamp }: StoredVisit): StoredVisit => ({ id, visitor, timestamp })
    if (this.shards === 1) {
      this.usage.queries++
      this.usage.documentsRead += Math.max(1, Math.min(limit, this.#visits.length))
      return this.#visits.slice(0, limit).map(copy)
    }
    const answers = allShards(this.shards).map((shard) => this.#visits.filter((visit) => shardOf(visit.id, this.shards) === shard).slice(0, limit))
    this.usage.queries += answers.length
    for (const answer of answers) this.usage.documentsRead += Math.max(1, answer.length)
    return mergeNewest(answers.map((answer) => answer.map((visit) => ({ visit: copy(visit), name: visit.id }))), limit)
  }

  async ping (): Promise<void> {}
}
