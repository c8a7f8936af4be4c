import type { CollectionReference, Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from '../plugins/bounded-calls.js'
import { dateField, FirestoreCollection, textField } from '../plugins/firestore-collection.js'
import type { Greeting, GreetingsRepository } from './repository.js'

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
export class FirestoreGreetingsRepository extends FirestoreCollection implements GreetingsRepository {
  constructor (db: Firestore, { collection = GUESTBOOKS_COLLECTION, calls }: { collection?: string, calls: BoundedCalls }) {
    super(db, collection, calls)
  }

  async add (guestbook: string, { author, content, date }: Greeting): Promise<void> {
    await this.calls.run('store a greeting', undefined, () => this.#greetings(guestbook).add({ author: author ?? null, content, date }))
  }

  async latest (guestbook: string, limit: number): Promise<Greeting[]> {
    const snapshot = await this.calls.run('read the greetings', undefined,
      () => this.#greetings(guestbook).orderBy('date', 'desc').limit(limit).get())
    return snapshot.docs.map((doc) => ({
      ...(typeof doc.get('author') === 'string' ? { author: doc.get('author') as string } : {}),
      content: textField(doc, 'content'),
      date: dateField(doc, 'date')
    }))
  }

  #greetings (guestbook: string): CollectionReference {
    return greetingsOf(this.collection, guestbook)
  }
}
