import type { CollectionReference, Firestore } from '@google-cloud/firestore'
import { CircuitBreaker } from '../cache/index.js'
import { RepositoryUnavailableError, type CallOptions, type VisitsRepository } from './repository.js'
import type { Visit } from './visit.js'

/** gRPC status code of a create() whose document exists. */
const ALREADY_EXISTS = 6

export interface FirestoreVisitsOptions {
  collection: string
  /** Upper bound of one call (a request's deadline may cut it shorter); the client's own retries can otherwise run for a minute. */
  timeoutMs: number
  breaker?: CircuitBreaker
}

export class FirestoreVisitsRepository implements VisitsRepository {
  readonly kind = 'firestore'
  readonly #collection: CollectionReference
  readonly #timeoutMs: number
  /** Calls this repository stopped waiting for, which the client may still be retrying. */
  readonly #abandoned = new Set<Promise<void>>()
  /** During an outage every abandoned call lives on for up to a minute: stop making new ones. */
  readonly #breaker: CircuitBreaker

  constructor (db: Firestore, { collection, timeoutMs, breaker = new CircuitBreaker({ threshold: 3, resetMs: 2000 }) }: FirestoreVisitsOptions) {
    this.#collection = db.collection(collection)
    this.#timeoutMs = timeoutMs
    this.#breaker = breaker
  }

  async add (id: string, { visitor, timestamp }: Visit, { deadline }: CallOptions = {}): Promise<void> {
    await this.#bounded('store a visit', deadline, async () => {
      try {
        await this.#collection.doc(id).create({ visitor, timestamp })
      } catch (err) {
        // A retry, or another instance, stored this very visit first: it is stored.
        if ((err as { code?: unknown }).code !== ALREADY_EXISTS) throw err
      }
    })
  }

  async latest (limit: number, { deadline }: CallOptions = {}): Promise<Visit[]> {
    const snapshot = await this.#bounded('read the latest visits', deadline,
      () => this.#collection.orderBy('timestamp', 'desc').limit(limit).get())
    return snapshot.docs.map((doc) => ({
      visitor: String(doc.get('visitor') ?? ''),
      timestamp: doc.get('timestamp')?.toDate?.() ?? new Date(0)
    }))
  }

  async ping (): Promise<void> {
    await this.#bounded('reach Firestore', undefined, () => this.#collection.select().limit(1).get())
  }

  /**
   * Waits, at most timeoutMs, for abandoned calls to end. The client must not be
   * terminated under them: its retries would then fail with unhandled rejections.
   */
  async drain (timeoutMs: number): Promise<boolean> {
    if (this.#abandoned.size === 0) return true
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>((resolve) => { timer = setTimeout(resolve, timeoutMs, false) })
    const settled = await Promise.race([Promise.all(this.#abandoned).then(() => true as const), late])
    clearTimeout(timer)
    return settled
  }

  async #bounded<T> (what: string, deadline: number | undefined, call: () => Promise<T>): Promise<T> {
    const timeoutMs = Math.min(this.#timeoutMs, (deadline ?? Infinity) - Date.now())
    if (timeoutMs <= 0) throw new RepositoryUnavailableError(`Firestore could not ${what}: the request's time is used up`)
    if (!this.#breaker.allow()) {
      throw new RepositoryUnavailableError(`Firestore could not ${what}: it kept failing, so it is given a moment before the next try`)
    }
    let operation: Promise<T> | undefined
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      operation = call()
      const result = await Promise.race([operation, timeout])
      this.#breaker.success()
      return result
    } catch (cause) {
      this.#breaker.failure()
      if (operation !== undefined) {
        const ended: Promise<void> = operation.then(() => {}, () => {}).then(() => { this.#abandoned.delete(ended) })
        this.#abandoned.add(ended)
      }
      throw new RepositoryUnavailableError(`Firestore could not ${what}: ${(cause as Error).message}`, { cause })
    } finally {
      clearTimeout(timer)
    }
  }
}
