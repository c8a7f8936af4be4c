import type { CollectionReference, Firestore } from '@google-cloud/firestore'
import { RepositoryUnavailableError, type VisitsRepository } from './repository.js'
import type { Visit } from './visit.js'

export interface FirestoreVisitsOptions {
  collection: string
  /** Upper bound of one call; the client's own retries can otherwise run for a minute. */
  timeoutMs: number
}

export class FirestoreVisitsRepository implements VisitsRepository {
  readonly kind = 'firestore'
  readonly #collection: CollectionReference
  readonly #timeoutMs: number

  constructor (db: Firestore, { collection, timeoutMs }: FirestoreVisitsOptions) {
    this.#collection = db.collection(collection)
    this.#timeoutMs = timeoutMs
  }

  async add ({ visitor, timestamp }: Visit): Promise<void> {
    await this.#bounded('store a visit', this.#collection.add({ visitor, timestamp }))
  }

  async latest (limit: number): Promise<Visit[]> {
    const snapshot = await this.#bounded('read the latest visits',
      this.#collection.orderBy('timestamp', 'desc').limit(limit).get())
    return snapshot.docs.map((doc) => ({
      visitor: String(doc.get('visitor') ?? ''),
      timestamp: doc.get('timestamp')?.toDate?.() ?? new Date(0)
    }))
  }

  async ping (): Promise<void> {
    await this.#bounded('reach Firestore', this.#collection.select().limit(1).get())
  }

  async #bounded<T> (what: string, operation: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    try {
      return await Promise.race([operation, timeout])
    } catch (cause) {
      // The abandoned call may still settle later; keep its rejection handled.
      operation.catch(() => {})
      throw new RepositoryUnavailableError(`Firestore could not ${what}: ${(cause as Error).message}`, { cause })
    } finally {
      clearTimeout(timer)
    }
  }
}
