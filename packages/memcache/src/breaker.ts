export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold?: number
  /** How long an open circuit refuses calls before it lets one probe through. */
  resetMs?: number
  now?: () => number
}

/**
 * Stops sending commands to a backend that keeps failing or timing out, so a
 * dead Redis costs requests nothing, and lets a single probe test it again.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed'
  #failures = 0
  /** When the circuit last opened or let a probe through. */
  #lastTry = 0
  readonly #threshold: number
  readonly #resetMs: number
  readonly #now: () => number

  constructor ({ threshold = 3, resetMs = 1000, now = Date.now }: BreakerOptions = {}) {
    this.#threshold = threshold
    this.#resetMs = resetMs
    this.#now = now
  }

  get state (): BreakerState {
    return this.#state
  }

  /** Whether a call may go out now. Every allowed call must end in success() or failure(). */
  allow (): boolean {
    if (this.#state === 'closed') return true
    // A probe that never reported back (its caller gave up) does not block the next one forever.
    if (this.#now() - this.#lastTry >= this.#resetMs) {
      this.#state = 'half-open'
      this.#lastTry = this.#now()
      return true
    }
    return false
  }

  success (): void {
    this.#failures = 0
    this.#state = 'closed'
  }

  failure (): void {
    this.#failures++
    if (this.#state === 'half-open' || this.#failures >= this.#threshold) {
      this.#lastTry = this.#now()
      this.#state = 'open'
    }
  }
}
