import type { CollectionReference, Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from '../lib/bounded-calls.js'

export interface Greeting {
  /** Absent for "An anonymous person". */
  author?: string
  content: string
  date: Date
}

/** Greetings by guestbook, newest first: Firestore, or memory for the embedded mode. */
export interface GreetingsRepository {
  add (guestbook: string, greeting: Greeting): Promise<void>
  latest (guestbook: string, limit: number): Promise<Greeting[]>
}

export class MemoryGreetingsRepository implements GreetingsRepository {
  readonly #books = new Map<string, Greeting[]>()

  async add (guestbook: string, greeting: Greeting): Promise<void> {
    const greetings = this.#books.get(guestbook) ?? []
    greetings.unshift({ ...greeting })
    // Bounded like the visits: the embedded mode must not grow without end.
    greetings.length = Math.min(greetings.length, 100)
    this.#books.set(guestbook, greetings)
  }

  async latest (guestbook: string, limit: number): Promise<Greeting[]> {
    return (this.#books.get(guestbook) ?? []).slice(0, limit).map((g) => ({ ...g }))
  }
}

/** Where the Firestore backend keeps the books. */
export const GUESTBOOKS_COLLECTION = 'guestbooks'

/** A book's greetings in the collection of books (the copy from Datastore mode writes there too). */
export function greetingsOf (books: CollectionReference, guestbook: string): CollectionReference {
  // Any name is allowed: prefixed and encoded, it is always one valid document id (never "." or "__x__").
  return books.doc(`g_${encodeURIComponent(guestbook)}`).collection('greetings')
}

/**
 * Each guestbook is a document of `guestbooks`, its greetings a subcollection: the
 * App Engine sample's entity group, read newest first.
 */
export class FirestoreGreetingsRepository implements GreetingsRepository {
  readonly #books: CollectionReference
  readonly #calls: BoundedCalls

  constructor (db: Firestore, { collection = GUESTBOOKS_COLLECTION, calls }: { collection?: string, calls: BoundedCalls }) {
    this.#books = db.collection(collection)
    this.#calls = calls
  }

  async add (guestbook: string, { author, content, date }: Greeting): Promise<void> {
    await this.#calls.run('store a greeting', undefined, () => this.#greetings(guestbook).add({ author: author ?? null, content, date }))
  }

  async latest (guestbook: string, limit: number): Promise<Greeting[]> {
    const snapshot = await this.#calls.run('read the greetings', undefined,
      () => this.#greetings(guestbook).orderBy('date', 'desc').limit(limit).get())
    return snapshot.docs.map((doc) => ({
      ...(typeof doc.get('author') === 'string' ? { author: doc.get('author') as string } : {}),
      content: String(doc.get('content') ?? ''),
      date: doc.get('date')?.toDate?.() ?? new Date(0)
    }))
  }

  #greetings (guestbook: string): CollectionReference {
    return greetingsOf(this.#books, guestbook)
  }
}
