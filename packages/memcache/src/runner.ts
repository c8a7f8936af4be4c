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

  /** Not async, and one promise besides the store's: it sits on the path of every call. */
  run<R> (namespace: string, operation: (store: S) => Promise<R>, guarded: Guarded<S> = this.primary): Promise<R | Failed> {
    return this.runThen(namespace, operation, same, guarded)
  }

  /**
   * run(), with `answer` applied to the result (or FAILED) in the same step: a caller that
   * turns the result into its own answer takes no promise of its own (the path of get()).
   */
  runThen<R, A> (namespace: string, operation: (store: S) => Promise<R>, answer: (result: R | Failed) => A, guarded: Guarded<S> = this.primary): Promise<A> {
    // A disconnected client fails at once; the client's own state change is logged by its owner.
    if (!guarded.store.connected || !guarded.breaker.allow()) return Promise.resolve(FAILED).then(answer)
    let pending: Promise<R>
    try {
      pending = operation(guarded.store)
    } catch (err) {
      pending = Promise.reject(err)
    }
    return pending.then((result) => {
      const reopened = guarded.breaker.state !== 'closed'
      guarded.breaker.success()
      if (reopened) this.#log.info(this.#where(namespace, guarded), 'cache answering again; circuit closed')
      return answer(result)
    }, (err: unknown) => answer(this.#failed(err, namespace, guarded)))
  }

  #failed (err: unknown, namespace: string, guarded: Guarded<S>): Failed {
    const { breaker } = guarded
    if (err instanceof CounterOverflowError) {
      // The store answered; the caller asked for something a counter cannot hold.
      breaker.success()
      throw err
    }
    this.#countError(namespace)
    const before = breaker.state
    breaker.failure()
    if (before === 'closed' && breaker.state === 'open') {
      this.#log.warn({ err, ...this.#where(namespace, guarded) }, 'cache failing; circuit open, serving without it')
    } else {
      this.#log.debug({ err, ...this.#where(namespace, guarded) }, 'cache command failed')
    }
    return FAILED
  }

  #where (namespace: string, { store }: Guarded<S>): object {
    return { namespace, ...(store === this.primary.store ? {} : { store: 'replica' }) }
  }

  /** A read from the replica when asked for and it answers, else from the primary. */
  read<R> (namespace: string, operation: (store: S) => Promise<R>, from: 'primary' | 'replica'): Promise<R | Failed> {
    return this.readThen(namespace, operation, from, same)
  }

  /** read(), with `answer` applied as in runThen(). */
  readThen<R, A> (namespace: string, operation: (store: S) => Promise<R>, from: 'primary' | 'replica', answer: (result: R | Failed) => A): Promise<A> {
    // The common read (the primary) costs no promise of its own.
    if (from === 'replica' && this.replica !== undefined) return this.#fromReplica(namespace, operation, this.replica, answer)
    return this.runThen(namespace, operation, answer)
  }

  async #fromReplica<R, A> (namespace: string, operation: (store: S) => Promise<R>, replica: Guarded<S>, answer: (result: R | Failed) => A): Promise<A> {
    const result = await this.run(namespace, operation, replica)
    return result === FAILED ? await this.runThen(namespace, operation, answer) : answer(result)
  }
}

function same<T> (value: T): T {
  return value
}
