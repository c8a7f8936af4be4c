import type { StoredVisit } from './visit.js'

/**
 * Past about 500 writes a second, an index on a field that only grows (the visits' timestamp)
 * slows and fails writes: they all land at its end. With VISITS_SHARDS > 1 each visit carries a
 * `shard` field and the index is (shard, timestamp desc): the writes are spread over as many ends
 * as there are shards, and the list is rebuilt with one query per shard, merged (docs/scale.md).
 */
export const SHARD_FIELD = 'shard'

/**
 * The shard of a visit: a hash of its id (FNV-1a, 32 bits), not a random draw, so a retried or
 * raced write of the same visit names the same shard, and the shard of any stored visit can be
 * computed again (the backfill of `npm run migrate:shards`). Visit ids are SHA-1 hex
 * digests (visitId): the shards fill evenly.
 */
export function shardOf (id: string, shards: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash % shards
}

/** Every shard number of a count. */
export function allShards (shards: number): number[] {
  return Array.from({ length: shards }, (_, shard) => shard)
}

/** A stored visit and the name its database orders it by among visits of the same timestamp. */
export interface RankedVisit {
  visit: StoredVisit
  /**
   * The document id as Firestore orders names: a numeric id written `__id<digits>__` (how Firestore
   * names a Datastore-mode numeric key), any other id by its UTF-8 bytes.
   */
  name: string
}

const NUMERIC_ID = /^__id(-?\d+)__$/

/** Firestore's (and Datastore mode's) ascending order of two ids of one collection: numeric ids first, by value; then names by UTF-8 bytes. */
export function compareNames (a: string, b: string): number {
  const numericA = NUMERIC_ID.exec(a)?.[1]
  const numericB = NUMERIC_ID.exec(b)?.[1]
  if (numericA !== undefined && numericB !== undefined) {
    const [x, y] = [BigInt(numericA), BigInt(numericB)]
    return x < y ? -1 : x > y ? 1 : 0
  }
  if (numericA !== undefined) return -1
  if (numericB !== undefined) return 1
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/** The order of `orderBy('timestamp', 'desc')`: newest first, then the greater name first (the implicit `__name__ desc`). */
export function newestFirst (a: RankedVisit, b: RankedVisit): number {
  return b.visit.timestamp.getTime() - a.visit.timestamp.getTime() || compareNames(b.name, a.name)
}

/** The `limit` newest of the shards' answers (each the newest of its shard), in the order one query over all would answer. */
export function mergeNewest (answers: RankedVisit[][], limit: number): StoredVisit[] {
  return answers.flat().sort(newestFirst).slice(0, limit).map(({ visit }) => visit)
}
