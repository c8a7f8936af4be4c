import type { Firestore } from '@google-cloud/firestore'
import { BoundedCalls } from '../plugins/bounded-calls.js'
import { Status } from '../plugins/database.js'
import { dateField, FirestoreCollection, textField, type RepositoryUsage } from '../plugins/firestore-collection.js'
import type { FirestoreOps, QuerySpec, StoredDocument } from '../plugins/firestore-ops.js'
import type { CallOptions, VisitsRepository } from './repository.js'
import { allShards, mergeNewest, SHARD_FIELD, shardOf } from './shards.js'
import type { StoredVisit, Visit } from './visit.js'

function toVisit (doc: StoredDocument): StoredVisit {
  return { id: doc.id, visitor: textField(doc, 'visitor'), timestamp: dateField(doc, 'timestamp') }
}

export interface FirestoreVisitsOptions {
  collection: string
  /** Upper bound of one call (a request's deadline may cut it shorter); the client's own retries can otherwise run for a minute. */
  timeoutMs: number
  /** Shared with the app's other Firestore repositories: one outage, one breaker. */
  calls?: BoundedCalls
  /** VISITS_SHARDS: 1 stores and queries as the App Engine sample did; more spread the writes (src/visits/shards.ts). */
  shards?: number
}

export class FirestoreVisitsRepository extends FirestoreCollection implements VisitsRepository {
  readonly kind = 'firestore'
  readonly usage: RepositoryUsage = { queries: 0, documentsRead: 0, writes: 0 }
  readonly shards: number

  constructor (db: Firestore | FirestoreOps, { collection, timeoutMs, calls = new BoundedCalls({ timeoutMs }), shards = 1 }: FirestoreVisitsOptions) {
    super(db, collection, calls)
    this.shards = shards
  }

  async add (id: string, { visitor, timestamp }: Visit, { deadline }: CallOptions = {}): Promise<StoredVisit> {
    return await this.calls.run('store a visit', deadline, async () => {
      this.usage.writes++
      const path = `${this.collection}/${id}`
      try {
        // One shard: the App Engine sample's document, and nothing more.
        await this.ops.create(path, this.shards === 1 ? { visitor, timestamp } : { visitor, timestamp, [SHARD_FIELD]: shardOf(id, this.shards) })
        return { id, visitor, timestamp }
      } catch (err) {
        if ((err as { code?: unknown }).code !== Status.ALREADY_EXISTS) throw err
      }
      // A retry, or another instance, stored this very visit first, maybe at another time: that one counts.
      this.usage.documentsRead++
      const stored = await this.ops.get(path)
      if (stored === undefined) throw new Error(`visit ${id} was reported stored but cannot be read`)
      return toVisit(stored)
    })
  }

  async find (id: string, { deadline, background }: CallOptions = {}): Promise<StoredVisit | undefined> {
    const stored = await this.calls.run('read a visit', deadline, async () => await this.ops.get(`${this.collection}/${id}`), { background })
    this.usage.documentsRead++
    return stored === undefined ? undefined : toVisit(stored)
  }

  async latest (limit: number, { deadline }: CallOptions = {}): Promise<StoredVisit[]> {
    const newest = (where?: QuerySpec['where']): QuerySpec => ({ collection: this.collection, where, orderBy: { field: 'timestamp', direction: 'desc' }, limit })
    const queries = this.shards === 1 ? [newest()] : allShards(this.shards).map((shard) => newest({ field: SHARD_FIELD, op: '==', value: shard }))
    this.usage.queries += queries.length
    // The shards' queries as one call: one outage is one failure for the breaker, and a half-open circuit's probe is the
    // whole read. They read at one time, in a read-only transaction (no lock): what one query over all would have seen.
    const answers = await this.calls.run('read the latest visits', deadline, async () => queries.length === 1
      ? [await this.ops.query(queries[0]!)]
      : await this.ops.queryAtOnce(queries))
    // Firestore bills a query by the documents it returns (at least one).
    for (const docs of answers) this.usage.documentsRead += Math.max(1, docs.length)
    if (answers.length === 1) return answers[0]!.map(toVisit)
    // Each shard's answer is in Firestore's order (timestamp desc, then __name__ desc); the merge keeps it.
    return mergeNewest(answers.map((docs) => docs.map((doc) => ({ visit: toVisit(doc), name: doc.id }))), limit)
  }

  async ping (): Promise<void> {
    this.usage.queries++
    const docs = await this.calls.run('answer a query', undefined, async () => await this.ops.query({ collection: this.collection, select: [], limit: 1 }))
    this.usage.documentsRead += Math.max(1, docs.length)
  }

  /**
   * Writes into each visit's document the shard of its id at this repository's count: the one-off
   * backfill of a change of VISITS_SHARDS (src/migrate/shards-cli.ts). Answers the documents written.
   */
  async placeInShards (visits: readonly StoredVisit[]): Promise<number> {
    // A batch takes at most 500 writes: one bounded call per batch.
    for (let at = 0; at < visits.length; at += 500) {
      const updates = visits.slice(at, at + 500).map(({ id }) => ({ path: `${this.collection}/${id}`, data: { [SHARD_FIELD]: shardOf(id, this.shards) } }))
      await this.calls.run('place visits in their shards', undefined, async () => { await this.ops.updateAll(updates) })
      this.usage.writes += updates.length
    }
    return visits.length
  }

  /** Waits for calls given up on; see BoundedCalls.drain. */
  async drain (timeoutMs: number): Promise<boolean> {
    return await this.calls.drain(timeoutMs)
  }
}
