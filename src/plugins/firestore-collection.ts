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
  protected readonly calls: BoundedCalls
  readonly #db: Firestore
  readonly #name: string
  #collection: CollectionReference | undefined

  constructor (db: Firestore, collection: string, calls: BoundedCalls) {
    this.#db = db
    this.#name = collection
    this.calls = calls
  }

  /** Taken on first use: the app's client is made only when a call needs it (src/plugins/firestore.ts). */
  protected get collection (): CollectionReference {
    this.#collection ??= this.#db.collection(this.#name)
    return this.#collection
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
