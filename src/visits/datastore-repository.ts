import type { Datastore, Entity } from '@google-cloud/datastore'
import { BoundedCalls } from '../plugins/bounded-calls.js'
import type { RepositoryUsage } from '../plugins/firestore-collection.js'
import { Status } from '../plugins/database.js'
import { bounded, idOf, keyPart } from '../plugins/datastore.js'
import type { CallOptions, VisitsRepository } from './repository.js'
import { allShards, mergeNewest, SHARD_FIELD, shardOf, type RankedVisit } from './shards.js'
import type { StoredVisit, Visit } from './visit.js'

/** The kind of the App Engine sample's `Visit(ndb.Model)`. */
export const VISIT_KIND = 'Visit'

function toVisit (client: Datastore, entity: Entity): StoredVisit {
  const timestamp: unknown = entity.timestamp
  return {
    id: idOf(entity[client.KEY]),
    visitor: String(entity.visitor ?? ''),
    timestamp: timestamp instanceof Date ? timestamp : new Date(0)
  }
}

export interface DatastoreVisitsOptions {
  /** Upper bound of one call (a request's deadline may cut it shorter). */
  timeoutMs: number
  /** Shared with the app's other Datastore repositories: one outage, one breaker. */
  calls?: BoundedCalls
  /** VISITS_SHARDS: 1 stores and queries as the App Engine sample did; more spread the writes (src/visits/shards.ts). */
  shards?: number
}

/**
 * Visits as the App Engine sample's NDB model stores them: kind `Visit`, `visitor` (a string)
 * and `timestamp` (a date-time), so the data an App Engine app left is served as it is, and the
 * old app reads what this one writes. Visits stored here have a key name (their id); NDB's have
 * a numeric id, shown as its decimal string.
 */
export class DatastoreVisitsRepository implements VisitsRepository {
  readonly kind = 'datastore'
  readonly usage: RepositoryUsage = { queries: 0, documentsRead: 0, writes: 0 }
  readonly #client: Datastore
  readonly #calls: BoundedCalls
  readonly shards: number

  constructor (client: Datastore, { timeoutMs, calls = new BoundedCalls({ timeoutMs, name: 'Datastore', target: 'Datastore' }), shards = 1 }: DatastoreVisitsOptions) {
    this.#client = client
    this.#calls = calls
    this.shards = shards
  }

  async add (id: string, { visitor, timestamp }: Visit, { deadline }: CallOptions = {}): Promise<StoredVisit> {
    return await this.#calls.run('store a visit', deadline, async (ms) => {
      this.usage.writes++
      const key = this.#key(id)
      try {
        // Nothing queries by visitor: unindexed, it costs no index write and may pass the 1500 bytes of an indexed string.
        // One shard: the NDB model's entity, and nothing more.
        const data = this.shards === 1 ? { visitor, timestamp } : { visitor, timestamp, [SHARD_FIELD]: shardOf(id, this.shards) }
        await this.#client.insert({ key, data, excludeFromIndexes: ['visitor'] })
        return { id, visitor, timestamp }
      } catch (err) {
        if ((err as { code?: unknown }).code !== Status.ALREADY_EXISTS) throw err
      }
      // A retry, or another instance, stored this very visit first, maybe at another time: that one counts.
      this.usage.documentsRead++
      const [stored] = await this.#client.get(key, bounded(ms)) as [Entity | undefined]
      if (stored === undefined) throw new Error(`visit ${id} was reported stored but cannot be read`)
      return toVisit(this.#client, stored)
    })
  }

  async find (id: string, { deadline, background }: CallOptions = {}): Promise<StoredVisit | undefined> {
    const [stored] = await this.#calls.run('read a visit', deadline, async (ms) => await this.#client.get(this.#key(id), bounded(ms)) as [Entity | undefined], { background })
    this.usage.documentsRead++
    return stored === undefined ? undefined : toVisit(this.#client, stored)
  }

  async latest (limit: number, { deadline }: CallOptions = {}): Promise<StoredVisit[]> {
    const kind = () => this.#client.createQuery(VISIT_KIND)
    let queries = [kind()]
    if (this.shards > 1) {
      // Loaded already with the client: the app imports no Datastore code unless it serves Datastore mode.
      const { PropertyFilter } = await import('@google-cloud/datastore')
      queries = allShards(this.shards).map((shard) => kind().filter(new PropertyFilter(SHARD_FIELD, '=', shard)))
    }
    this.usage.queries += queries.length
    // Ties in the key's descending order, as Firestore breaks them (index.yaml has the indexes).
    const newest = queries.map((query) => query.order('timestamp', { descending: true }).order('__key__', { descending: true }).limit(limit))
    // The shards' queries as one call: one outage is one failure for the breaker, and a half-open circuit's probe is the
    // whole read. They read at one time, in a read-only transaction (no lock): what one query over all would have seen.
    const answers = await this.#calls.run('read the latest visits', deadline, async (ms) => {
      if (newest.length === 1) return [(await this.#client.runQuery(newest[0]!, bounded(ms)))[0]]
      const transaction = this.#client.transaction({ readOnly: true })
      await transaction.run()
      try {
        return await Promise.all(newest.map(async (query) => (await transaction.runQuery(query, bounded(ms)))[0]))
      } finally {
        await transaction.rollback().catch(() => {})
      }
    })
    // Datastore bills a query by the entities it returns (at least one).
    for (const entities of answers) this.usage.documentsRead += Math.max(1, entities.length)
    if (answers.length === 1) return answers[0]!.map((entity) => toVisit(this.#client, entity))
    return mergeNewest(answers.map((entities) => entities.map((entity) => this.#ranked(entity))), limit)
  }

  async ping (): Promise<void> {
    this.usage.queries++
    const [entities] = await this.#calls.run('answer a query', undefined,
      async (ms) => await this.#client.runQuery(this.#client.createQuery(VISIT_KIND).select('__key__').limit(1), bounded(ms)))
    this.usage.documentsRead += Math.max(1, entities.length)
  }

  /**
   * Rewrites each visit's entity with the shard of its id at this repository's count: the one-off
   * backfill of a change of VISITS_SHARDS (src/migrate/shards-cli.ts). The entity keeps the NDB
   * model's two properties. Answers the entities written.
   */
  async placeInShards (visits: readonly StoredVisit[]): Promise<number> {
    // A commit takes at most 500 mutations.
    for (let at = 0; at < visits.length; at += 500) {
      const entities = visits.slice(at, at + 500).map(({ id, visitor, timestamp }) =>
        ({ key: this.#key(id), data: { visitor, timestamp, [SHARD_FIELD]: shardOf(id, this.shards) }, excludeFromIndexes: ['visitor'] }))
      await this.#calls.run('place visits in their shards', undefined, async () => await this.#client.update(entities))
      this.usage.writes += entities.length
    }
    return visits.length
  }

  /** A numeric key sorts before any name, by value: ranked under the name Firestore gives it. */
  #ranked (entity: Entity): RankedVisit {
    const key = entity[this.#client.KEY] as { name?: string, id?: string | number }
    return { visit: toVisit(this.#client, entity), name: key.name ?? `__id${String(key.id)}__` }
  }

  #key (id: string) {
    return this.#client.key([VISIT_KIND, keyPart(this.#client, id)])
  }
}
