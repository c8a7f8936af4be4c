import type { CollectionReference, DocumentSnapshot, Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from './bounded-calls.js'

/** What this process has asked of the backend since it started (billing units of Firestore). */
export interface RepositoryUsage {
  queries: number
  documentsRead: number
  writes: number
}

/** A repository over one collection, every call of it bounded by the app's shared BoundedCalls. */
export abstract class FirestoreCollection {
  protected readonly collection: CollectionReference
  protected readonly calls: BoundedCalls

  constructor (db: Firestore, collection: string, calls: BoundedCalls) {
    this.collection = db.collection(collection)
    this.calls = calls
  }
}

/** A text field of a document; a missing one reads as empty rather than failing the page. */
export function textField (doc: DocumentSnapshot, field: string): string {
  return String(doc.get(field) ?? '')
}

/** A timestamp field of a document as a Date; a missing one reads as the epoch, so it sorts oldest. */
export function dateField (doc: DocumentSnapshot, field: string): Date {
  return doc.get(field)?.toDate?.() ?? new Date(0)
}
