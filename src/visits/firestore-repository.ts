import type { DocumentSnapshot, Firestore, Query } from '@google-cloud/firestore'
import { BoundedCalls } from '../plugins/bounded-calls.js'
import { Status } from '../plugins/database.js'
import { dateField, FirestoreCollection, textField, type RepositoryUsage } from '../plugins/firestore-collection.js'
import type { CallOptions, VisitsRepository } from './repository.js'
import { allShards, mergeNewest, SHARD_FIELD, shardOf } from './shards.js'
import type { StoredVisit, Visit } from './visit.js'

function toVisit (doc: DocumentSnapshot): StoredVisit {
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

  constructor (db: Firestore, { collection, timeoutMs, calls = new BoundedCalls({ timeoutMs }), shards = 1 }: FirestoreVisitsOptions) {
    super(db, collection, calls)
    this.shards = shards
  }

  async add (id: string, { visitor, timestamp }: Visit, { deadline }: CallOptions = {}): Promise<StoredVisit> {
    return await this.calls.run('store a visit', deadline, async () => {
      this.usage.writes++
      const doc = this.collection.doc(id)
      try {
        // One shard: the App Engine sample's document, and nothing more.
        await doc.create(this.shards === 1 ? { visitor, timestamp } : { visitor, timestamp, [SHARD_FIELD]: shardOf(id, this.shards) })
        return { id, visitor, timestamp }
      } catch (err) {
        if ((err as { code?: unknown }).code !== Status.ALREADY_EXISTS) throw err
      }
      // A retry, or another instance, stored this very visit first, maybe at another time: that one counts.
      this.usage.documentsRead++
      const stored = await doc.get()
      if (!stored.exists) throw new Error(`visit ${id} was reported stored but cannot be read`)
      return toVisit(stored)
    })
  }

  async find (id: string, { deadline, background }: CallOptions = {}): Promise<StoredVisit | undefined> {
    const stored = await this.calls.run('read a visit', deadline, async () => await this.collection.doc(id).get(), { background })
    this.usage.documentsRead++
    return stored.exists ? toVisit(stored) : undefined
  }

  async latest (limit: number, { deadline }: CallOptions = {}): Promise<StoredVisit[]> {
    const queries = this.shards === 1
      ? [this.collection as Query]
      : allShards(this.shards).map((shard) => this.collection.where(SHARD_FIELD, '==', shard))
    this.usage.queries += queries.length
    const newest = queries.map((query) => query.orderBy('timestamp', 'desc').limit(limit))
    // The shards' queries as one call: one outage is one failure for the breaker, and a half-open circuit's probe is the
    // whole read. They read at one time, in a read-only transaction (no lock): what one query over all would have seen.
    const snapshots = await this.calls.run('read the latest visits', deadline, async () => newest.length === 1
      ? [await newest[0]!.get()]
      : await this.collection.firestore.runTransaction(async (tx) => await Promise.all(newest.map(async (query) => await tx.get(query))), { readOnly: true }))
    // Firestore bills a query by the documents it returns (at least one).
    for (const snapshot of snapshots) this.usage.documentsRead += Math.max(1, snapshot.size)
    if (snapshots.length === 1) return snapshots[0]!.docs.map(toVisit)
    // Each shard's answer is in Firestore's order (timestamp desc, then __name__ desc); the merge keeps it.
    return mergeNewest(snapshots.map((snapshot) => snapshot.docs.map((doc) => ({ visit: toVisit(doc), name: doc.id }))), limit)
  }

  async ping (): Promise<void> {
    this.usage.queries++
    const snapshot = await this.calls.run('answer a query', undefined, () => this.collection.select().limit(1).get())
    this.usage.documentsRead += Math.max(1, snapshot.size)
  }

  /**
   * Writes into each visit's document the shard of its id at this repository's count: the one-off
   * backfill of a change of VISITS_SHARDS (src/migrate/shards-cli.ts). Answers the documents written.
   */
  async placeInShards (visits: readonly StoredVisit[]): Promise<number> {
    // A batch takes at most 500 writes.
    for (let at = 0; at < visits.length; at += 500) {
      const batch = this.collection.firestore.batch()
      for (const { id } of visits.slice(at, at + 500)) batch.update(this.collection.doc(id), { [SHARD_FIELD]: shardOf(id, this.shards) })
      await this.calls.run('place visits in their shards', undefined, async () => await batch.commit())
      this.usage.writes += Math.min(500, visits.length - at)
    }
    return visits.length
  }

  /** Waits for calls given up on; see BoundedCalls.drain. */
  async drain (timeoutMs: number): Promise<boolean> {
    return await this.calls.drain(timeoutMs)
  }
}
