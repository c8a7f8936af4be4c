import type { Datastore, Entity } from '@google-cloud/datastore'
import type { DocumentReference, Firestore } from '@google-cloud/firestore'
import { GREETING_KIND, GUESTBOOK_KIND } from '../guestbook/datastore-repository.js'
import { greetingsOf } from '../guestbook/firestore-repository.js'
import { Status } from '../plugins/database.js'
import { idOf } from '../plugins/datastore.js'
import { TASK_KIND } from '../tasks/datastore-repository.js'
import { VISIT_KIND } from '../visits/datastore-repository.js'
import { SHARD_FIELD, shardOf } from '../visits/shards.js'
import type { Checkpoint, KindProgress } from './checkpoint.js'

export const KINDS = [VISIT_KIND, GREETING_KIND, TASK_KIND] as const
export type Kind = typeof KINDS[number]

/** The Firestore collections the service reads (the repositories' own). */
export interface Collections {
  visits: string
  /** VISITS_SHARDS of the service that will read the copy: a copied visit carries its shard as a visit it stored would. Default 1. */
  visitShards?: number
  guestbooks: string
  tasks: string
}

/** An entity as the Firestore document the service would have written, or why it has none. */
type Mapped = { ref: DocumentReference, data: Record<string, unknown> } | { problem: string }

/** Datastore allows these in a key name; Firestore does not in a document id. */
function invalidDocumentId (id: string): boolean {
  return id.includes('/') || id === '.' || id === '..'
}

/**
 * Each kind goes where the Firestore repositories read it, with the properties the service
 * uses and no others; ids are kept (a numeric one as its decimal string), so a copied entity
 * and its document name each other.
 */
function mapper (client: Datastore, target: Firestore, collections: Collections): Record<Kind, (entity: Entity) => Mapped> {
  const visits = target.collection(collections.visits)
  const books = target.collection(collections.guestbooks)
  const tasks = target.collection(collections.tasks)
  const shards = collections.visitShards ?? 1
  const described = (entity: Entity) => (entity[client.KEY].path as Array<string | number>).join('/')
  const documentId = (entity: Entity): string | { problem: string } => {
    const id = idOf(entity[client.KEY])
    return invalidDocumentId(id) ? { problem: `${described(entity)}: its key name is not a valid Firestore document id` } : id
  }
  return {
    [VISIT_KIND]: (entity) => {
      const id = documentId(entity)
      if (typeof id !== 'string') return id
      const data = { visitor: entity.visitor, timestamp: entity.timestamp }
      return { ref: visits.doc(id), data: shards === 1 ? data : { ...data, [SHARD_FIELD]: shardOf(id, shards) } }
    },
    [GREETING_KIND]: (entity) => {
      const parent = entity[client.KEY].parent
      // The guestbook shows a book's greetings only, found by their ancestor.
      if (parent?.kind !== GUESTBOOK_KIND) return { problem: `${described(entity)}: no ${GUESTBOOK_KIND} ancestor, so no book shows it` }
      const id = documentId(entity)
      return typeof id !== 'string'
        ? id
        : { ref: greetingsOf(books, idOf(parent)).doc(id), data: { author: entity.author ?? null, content: entity.content, date: entity.date } }
    },
    [TASK_KIND]: (entity) => {
      const id = documentId(entity)
      // The old model has no creation time: the epoch lists those tasks first, as the Datastore backend does.
      return typeof id !== 'string' ? id : { ref: tasks.doc(id), data: { name: entity.name, createdAt: entity.createdAt ?? new Date(0) } }
    }
  }
}

/** What one run did with a kind's entities. */
export interface KindCounts {
  read: number
  written: number
  /** Already in Firestore (copied before, or written by the service): left as they are. */
  skipped: number
  /** Not copied: not mappable, or their write failed (a rerun retries those). */
  failed: number
}

export interface CopyOptions {
  source: Datastore
  target: Firestore
  collections: Collections
  kinds?: readonly Kind[]
  checkpoint: Checkpoint
  /** Entities read per query, and between two checkpoints. */
  pageSize?: number
  /** Reads everything and tells what would be written, writing nothing (not even the checkpoint). */
  dryRun?: boolean
  /** Stops after the page in progress, its checkpoint saved: the next run goes on from there. */
  signal?: AbortSignal
  /** After each page: this run's counts, and where the kind stands over every run (total: counted at the start, if the source could). */
  onProgress?: (kind: Kind, counts: Readonly<KindCounts>, position: { read: number, total?: number, done: boolean }) => void
  /** An entity that was not copied, and why. */
  onProblem?: (problem: string) => void
}

export interface CopyResult {
  kinds: Partial<Record<Kind, KindCounts>>
  /** Stopped by the signal before every kind was done. */
  interrupted: boolean
  /** Some writes failed: their kinds stopped at the page that holds them. */
  incomplete: boolean
}

/**
 * Copies the kinds from Datastore mode into Firestore, create-only: a document that exists is
 * never overwritten (counted as skipped), so a rerun, or a run after the service wrote there,
 * copies nothing twice. Pages are read in key order from the checkpoint's cursor; a page's cursor
 * is saved only once its writes are all answered, and a page with writes that failed stops its
 * kind there, so a rerun retries them. The source is only read.
 */
export async function copyToFirestore (options: CopyOptions): Promise<CopyResult> {
  const { source, target, collections, kinds = KINDS, checkpoint, pageSize = 300, dryRun = false, signal, onProgress, onProblem } = options
  const map = mapper(source, target, collections)
  const result: CopyResult = { kinds: {}, interrupted: false, incomplete: false }
  // A function, not a value: the signal changes under the awaits.
  const stopped = () => signal?.aborted === true
  for (const kind of kinds) {
    if (stopped()) {
      result.interrupted = true
      break
    }
    const counts: KindCounts = { read: 0, written: 0, skipped: 0, failed: 0 }
    result.kinds[kind] = counts
    // A dry run starts from where a real run would.
    const position: KindProgress = { ...checkpoint.progress(kind) }
    if (position.done) {
      onProgress?.(kind, counts, position)
      continue
    }
    const [[counted]] = await source.runAggregationQuery(source.createAggregationQuery(source.createQuery(kind)).count('total'))
    const total = typeof counted?.total === 'number' ? counted.total : undefined
    onProgress?.(kind, counts, { ...position, total })
    while (!position.done) {
      let query = source.createQuery(kind).limit(pageSize)
      if (position.cursor !== undefined) query = query.start(position.cursor)
      const [entities, info] = await source.runQuery(query)
      counts.read += entities.length
      const documents: Array<{ ref: DocumentReference, data: Record<string, unknown> }> = []
      for (const entity of entities) {
        const mapped = map[kind](entity)
        if ('problem' in mapped) {
          counts.failed++
          onProblem?.(mapped.problem)
        } else {
          documents.push(mapped)
        }
      }
      if (dryRun) {
        await countExisting(target, documents, counts)
      } else if (await createAll(target, documents, counts, onProblem) > 0) {
        // The cursor stays before this page: the rerun writes what failed, and skips the rest.
        result.incomplete = true
        onProgress?.(kind, counts, { ...position, total })
        break
      }
      position.read += entities.length
      position.cursor = info.endCursor
      position.done = info.moreResults === 'NO_MORE_RESULTS' || entities.length < pageSize
      if (!dryRun) await checkpoint.save(kind, position)
      onProgress?.(kind, counts, { ...position, total })
      if (!position.done && stopped()) {
        result.interrupted = true
        return result
      }
    }
  }
  return result
}

/** A dry run: what exists would be skipped, the rest written. */
async function countExisting (target: Firestore, documents: Array<{ ref: DocumentReference }>, counts: KindCounts): Promise<void> {
  const existing = documents.length === 0 ? 0 : (await target.getAll(...documents.map((d) => d.ref))).filter((s) => s.exists).length
  counts.skipped += existing
  counts.written += documents.length - existing
}

/**
 * Creates the documents through a bulk writer, which batches them and paces the writes within
 * Firestore's limits, retrying what Firestore asks to retry. Answers the number that failed.
 */
async function createAll (target: Firestore, documents: Array<{ ref: DocumentReference, data: Record<string, unknown> }>,
  counts: KindCounts, onProblem: CopyOptions['onProblem']): Promise<number> {
  const writer = target.bulkWriter()
  let failed = 0
  const writes = documents.map(async ({ ref, data }) => {
    try {
      await writer.create(ref, data)
      counts.written++
    } catch (err) {
      if ((err as { code?: unknown }).code === Status.ALREADY_EXISTS) {
        counts.skipped++
        return
      }
      failed++
      counts.failed++
      onProblem?.(`${ref.path}: ${(err as Error).message}`)
    }
  })
  await writer.close()
  await Promise.all(writes)
  return failed
}
