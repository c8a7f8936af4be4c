/**
 * Keeps trying an idempotent step that failed (an invalidation the cache could not
 * take) every `everyMs` until it succeeds, so a change is never left stale once the
 * cache is back, whether or not a request comes by.
 */
export class Retry {
  readonly #attempt: () => Promise<boolean>
  readonly #everyMs: number
  #timer: NodeJS.Timeout | undefined

  constructor (attempt: () => Promise<boolean>, { everyMs = 1000 }: { everyMs?: number } = {}) {
    this.#attempt = attempt
    this.#everyMs = everyMs
  }

  get pending (): boolean {
    return this.#timer !== undefined
  }

  /** Runs the step now; on failure keeps retrying in the background. */
  async run (): Promise<boolean> {
    const done = await this.#attempt().catch(() => false)
    if (done) this.stop()
    else this.#timer ??= setInterval(() => { this.run().catch(() => {}) }, this.#everyMs).unref()
    return done
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
