import type { CollectionReference, Firestore } from '@google-cloud/firestore'
import type { BoundedCalls } from '../plugins/bounded-calls.js'
import { dateField, FirestoreCollection, textField } from '../plugins/firestore-collection.js'
import type { FirestoreOps } from '../plugins/firestore-ops.js'
import type { Greeting, GreetingsRepository } from './repository.js'

/** Where the Firestore backend keeps the books. */
export const GUESTBOOKS_COLLECTION = 'guestbooks'

/** The path of a book's greetings under the collection of books. */
function greetingsPath (books: string, guestbook: string): string {
  // Any name is allowed: prefixed and encoded, it is always one valid document id (never "." or "__x__").
  return `${books}/g_${encodeURIComponent(guestbook)}/greetings`
}

/** A book's greetings in the collection of books (the copy from Datastore mode writes there too). */
export function greetingsOf (books: CollectionReference, guestbook: string): CollectionReference {
  return books.firestore.collection(greetingsPath(books.path, guestbook))
}

/**
 * Each guestbook is a document of `guestbooks`, its greetings a subcollection: the
 * App Engine sample's entity group, read newest first.
 */
export class FirestoreGreetingsRepository extends FirestoreCollection implements GreetingsRepository {
  constructor (db: Firestore | FirestoreOps, { collection = GUESTBOOKS_COLLECTION, calls }: { collection?: string, calls: BoundedCalls }) {
    super(db, collection, calls)
  }

  async add (guestbook: string, { author, content, date }: Greeting): Promise<void> {
    await this.calls.run('store a greeting', undefined, async () => await this.ops.add(greetingsPath(this.collection, guestbook), { author: author ?? null, content, date }))
  }

  async latest (guestbook: string, limit: number): Promise<Greeting[]> {
    const docs = await this.calls.run('read the greetings', undefined,
      async () => await this.ops.query({ collection: greetingsPath(this.collection, guestbook), orderBy: { field: 'date', direction: 'desc' }, limit }))
    return docs.map((doc) => ({
      ...(typeof doc.data.author === 'string' ? { author: doc.data.author } : {}),
      content: textField(doc, 'content'),
      date: dateField(doc, 'date')
    }))
  }
}
