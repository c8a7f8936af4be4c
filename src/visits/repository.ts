import type { RepositoryUsage } from '../plugins/firestore-collection.js'
import type { StoredVisit, Visit } from './visit.js'

export interface CallOptions {
  /** Epoch milliseconds by which the call must have answered. */
  deadline?: number
  /** No request waits for it: it must not trip or probe the backend's circuit (see BoundedCalls). */
  background?: boolean
}

/** Where visits are kept for good. Implementations: Firestore, Datastore mode, and memory for the embedded mode. */
export interface VisitsRepository {
  readonly kind: 'firestore' | 'datastore' | 'memory'
  readonly usage: Readonly<RepositoryUsage>
  /**
   * Stores the visit under the id once, and answers the visit as stored: adding an id that
   * exists already changes nothing and answers the stored one (its timestamp may differ).
   */
  add (id: string, visit: Visit, options?: CallOptions): Promise<StoredVisit>
  /** The visit stored under the id, if any. */
  find (id: string, options?: CallOptions): Promise<StoredVisit | undefined>
  /** The most recent visits, newest first (ties: the greater id first). */
  latest (limit: number, options?: CallOptions): Promise<StoredVisit[]>
  /** Resolves when the backend answers (a new client has set up its channel once it has). */
  ping (): Promise<void>
}
