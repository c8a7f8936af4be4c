import { channel } from 'node:diagnostics_channel'
import { CircuitBreaker, type BreakerState } from '@visitme/memcache'

/** What a database call published on `databaseCalls` says once it has ended. */
export interface DatabaseCallMessage {
  /** The backend as errors name it (Firestore, Datastore). */
  database: string
  what: string
  durationMs: number
  outcome: 'ok' | 'error' | 'refused'
}

/**
 * Every call, once ended, for whoever listens (the telemetry's metrics); with no one
 * listening, publishing costs one check.
 */
export const databaseCalls = channel('visitme:database-call')

/** A repository could not answer in time or at all: the request cannot be served honestly. */
export class RepositoryUnavailableError extends Error {
  override name = 'RepositoryUnavailableError'
  /**
   * The call, going on after it was given up on: a write may still land. Undefined when the
   * call was never made (the request's time used up, or the circuit open): nothing was sent.
   */
  readonly call: Promise<unknown> | undefined

  constructor (message: string, { cause, call }: { cause?: unknown, call?: Promise<unknown> } = {}) {
    super(message, { cause })
    this.call = call
  }
}

/**
 * Calls to a backend whose client retries on its own for a minute (Firestore): each
 * call is bounded by a timeout (or the request's deadline), a circuit breaker stops
 * new calls while the backend keeps failing, and calls given up on are tracked so the
 * client is not closed under them.
 */
export class BoundedCalls {
  /** The bound of one call. */
  readonly timeoutMs: number
  readonly #breaker: CircuitBreaker
  readonly #target: string
  readonly #name: string
  readonly #connectionFails: (() => Promise<Error | undefined>) | undefined
  readonly #checkAfterMs: number
  #checking: Promise<Error | undefined> | undefined
  readonly #abandoned = new Set<Promise<void>>()

  constructor ({ timeoutMs, breaker = new CircuitBreaker({ threshold: 3, resetMs: 2000 }), target = 'Firestore', name = 'Firestore', connectionFails, checkAfterMs = 200 }: {
    timeoutMs: number
    /** The backend as errors name it: "<name> could not ...". */
    name?: string
    breaker?: CircuitBreaker
    /** Where the calls go, named in errors. */
    target?: string
    /** Tells quickly whether the backend takes connections at all (an Error when it does not). */
    connectionFails?: () => Promise<Error | undefined>
    /** A call still unanswered after this long has the connection checked: it is not waited out when nothing listens. */
    checkAfterMs?: number
  }) {
    this.timeoutMs = timeoutMs
    this.#breaker = breaker
    this.#target = target
    this.#name = name
    this.#connectionFails = connectionFails
    this.#checkAfterMs = checkAfterMs
  }

  /** The circuit breaker's state, for an operator's metrics. */
  get breakerState (): BreakerState {
    return this.#breaker.state
  }

  /**
   * `call` is given the time it has. A `background` call (no request waits for it) is made only while the circuit is closed,
   * and neither takes the probe of an open circuit nor counts toward opening it: requests decide.
   */
  run<T> (what: string, deadline: number | undefined, call: (timeoutMs: number) => Promise<T>, options: { background?: boolean } = {}): Promise<T> {
    // Not async itself: with no one listening a call costs no promise more than before.
    return databaseCalls.hasSubscribers ? this.#published(what, deadline, call, options) : this.#run(what, deadline, call, options)
  }

  async #published<T> (what: string, deadline: number | undefined, call: (timeoutMs: number) => Promise<T>, options: { background?: boolean }): Promise<T> {
    const start = performance.now()
    let outcome: DatabaseCallMessage['outcome'] = 'ok'
    try {
      return await this.#run(what, deadline, call, options)
    } catch (err) {
      // A call never made (time used up, circuit open) says nothing of the database's latency.
      outcome = err instanceof RepositoryUnavailableError && err.call === undefined ? 'refused' : 'error'
      throw err
    } finally {
      databaseCalls.publish({ database: this.#name, what, durationMs: performance.now() - start, outcome } satisfies DatabaseCallMessage)
    }
  }

  async #run<T> (what: string, deadline: number | undefined, call: (timeoutMs: number) => Promise<T>, { background = false }: { background?: boolean }): Promise<T> {
    const timeoutMs = Math.min(this.timeoutMs, (deadline ?? Infinity) - Date.now())
    if (timeoutMs <= 0) throw new RepositoryUnavailableError(`${this.#name} could not ${what}: the request's time is used up`)
    if (background ? this.#breaker.state !== 'closed' : !this.#breaker.allow()) {
      throw new RepositoryUnavailableError(`${this.#name} could not ${what}: it kept failing, so it is given a moment before the next try`)
    }
    let operation: Promise<T> | undefined
    const timers: NodeJS.Timeout[] = []
    const timeout = new Promise<never>((_resolve, reject) => {
      timers.push(setTimeout(() => reject(new Error(`no answer from ${this.#target} within ${timeoutMs} ms`)), timeoutMs))
      const check = this.#connectionFails
      if (check !== undefined && this.#checkAfterMs < timeoutMs) {
        timers.push(setTimeout(() => {
          // One check at a time, whatever the number of calls waiting.
          this.#checking ??= check().finally(() => { this.#checking = undefined })
          this.#checking.then((err) => { if (err !== undefined) reject(err) }, () => {})
        }, this.#checkAfterMs))
      }
    })
    try {
      // The call's own bound, for a client that takes one: it then ends by itself, instead of retrying on after the answer.
      operation = call(timeoutMs)
      const result = await Promise.race([operation, timeout])
      if (!background) this.#breaker.success()
      return result
    } catch (cause) {
      if (!background) this.#breaker.failure()
      if (operation !== undefined) {
        // A call given up on that answers after all shows the backend is back.
        const ended: Promise<void> = operation.then(() => { this.#breaker.success() }, () => {}).then(() => { this.#abandoned.delete(ended) })
        this.#abandoned.add(ended)
      }
      // The cause's message completes this one where it is logged (pino appends it): said once.
      throw new RepositoryUnavailableError(`${this.#name} could not ${what}`, { cause, call: operation })
    } finally {
      for (const timer of timers) clearTimeout(timer)
    }
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
}
