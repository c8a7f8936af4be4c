import type { Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from './bounded-calls.js'
import { opsOf, type FirestoreOps, type StoredDocument } from './firestore-ops.js'

/** What this process has asked of the backend since it started (billing units of Firestore). */
export interface RepositoryUsage {
  queries: number
  documentsRead: number
  writes: number
}

/** A repository over one collection, every call of it bounded by the app's shared BoundedCalls. */
export abstract class FirestoreCollection {
  protected readonly calls: BoundedCalls
  protected readonly ops: FirestoreOps
  /** The collection's path. */
  protected readonly collection: string

  /** db: a client (used on this thread), or the app's operations (src/plugins/firestore.ts). */
  constructor (db: Firestore | FirestoreOps, collection: string, calls: BoundedCalls) {
    this.ops = opsOf(db)
    this.collection = collection
    this.calls = calls
  }
}

/** A text field of a document; a missing one reads as empty rather than failing the page. */
export function textField (doc: StoredDocument, field: string): string {
  return String(doc.data[field] ?? '')
}

/** A timestamp field of a document as a Date; a missing one reads as the epoch, so it sorts oldest. */
export function dateField (doc: StoredDocument, field: string): Date {
  const value = doc.data[field]
  return value instanceof Date ? value : new Date(0)
}
