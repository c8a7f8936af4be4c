import { CircuitBreaker } from './breaker.js'
import type { CacheLogger } from './logger.js'
import { CounterOverflowError } from './stores/store.js'

/** What a store call answers when the store could not: the caller falls back. */
export const FAILED = Symbol('failed')
export type Failed = typeof FAILED

/** A store with the breaker that guards it. */
export interface Guarded<S> {
  store: S & { readonly connected: boolean }
  breaker: CircuitBreaker
}

/**
 * The one place the cache fails open: every store error or timeout becomes FAILED, is counted
 * and logged once per outage, and trips the circuit breaker of that store. A misuse the store
 * reports (a counter overflow) is thrown to the caller and leaves the breaker closed.
 */
export class Runner<S> {
  readonly #log: CacheLogger
  readonly #countError: (namespace: string) => void

  constructor (readonly primary: Guarded<S>, readonly replica: Guarded<S> | undefined, log: CacheLogger, countError: (namespace: string) => void) {
    this.#log = log
    this.#countError = countError
  }

  async run<R> (namespace: string, operation: (store: S) => Promise<R>, { store, breaker }: Guarded<S> = this.primary): Promise<R | Failed> {
    // A disconnected client fails at once; the client's own state change is logged by its owner.
    if (!store.connected || !breaker.allow()) return FAILED
    const where = () => ({ namespace, ...(store === this.primary.store ? {} : { store: 'replica' }) })
    try {
      const result = await operation(store)
      const before = breaker.state
      breaker.success()
      if (before !== 'closed') this.#log.info(where(), 'cache answering again; circuit closed')
      return result
    } catch (err) {
      if (err instanceof CounterOverflowError) {
        // The store answered; the caller asked for something a counter cannot hold.
        breaker.success()
        throw err
      }
      this.#countError(namespace)
      const before = breaker.state
      breaker.failure()
      if (before === 'closed' && breaker.state === 'open') {
        this.#log.warn({ err, ...where() }, 'cache failing; circuit open, serving without it')
      } else {
        this.#log.debug({ err, ...where() }, 'cache command failed')
      }
      return FAILED
    }
  }

  /** A read from the replica when asked for and it answers, else from the primary. */
  async read<R> (namespace: string, operation: (store: S) => Promise<R>, from: 'primary' | 'replica'): Promise<R | Failed> {
    if (from === 'replica' && this.replica !== undefined) {
      const result = await this.run(namespace, operation, this.replica)
      if (result !== FAILED) return result
    }
    return await this.run(namespace, operation)
  }
}
