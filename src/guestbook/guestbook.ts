import { ValueTooLargeError, type Cache } from '@visitme/memcache'
import { Retry } from '../lib/retry.js'
import { greetingsKey } from './cache-keys.js'
import type { Greeting, GreetingsRepository } from './repository.js'

/** Seconds the rendered greetings stay cached, as in the App Engine sample. */
const GREETINGS_TTL = 10

/** Where a rendering too large for the cache is reported. */
interface Log {
  error: (details: object, message: string) => void
}

/** The App Engine guestbook: rendered greetings cached per book, dropped when someone signs. */
export class Guestbook {
  readonly #greetings: GreetingsRepository
  readonly #cache: Cache
  readonly #render: (greetings: Greeting[]) => Promise<string>
  // Books whose cached greetings could not be dropped yet; retried until the cache takes it.
  readonly #toDrop = new Set<string>()
  readonly #drops: Retry

  constructor ({ greetings, cache, render }: {
    greetings: GreetingsRepository
    /** The guestbook's own namespace. */
    cache: Cache
    /** The greetings as the HTML the book shows. */
    render: (greetings: Greeting[]) => Promise<string>
  }) {
    this.#greetings = greetings
    this.#cache = cache
    this.#render = render
    this.#drops = new Retry(async () => {
      for (const book of this.#toDrop) {
        // The lock keeps a reader that fetched the old greetings before the sign from add()ing them back.
        if ((await cache.delete(greetingsKey(book), { lockSeconds: GREETINGS_TTL })) === 'failed') return false
        this.#toDrop.delete(book)
      }
      return true
    })
  }

  /** The book's latest greetings, rendered: from the cache, else rendered and added to it. */
  async greetingsHtml (book: string, log: Log): Promise<string> {
    let html = await this.#cache.get<string>(greetingsKey(book))
    if (html === undefined) {
      html = await this.#render(await this.#greetings.latest(book, 10))
      try {
        await this.#cache.add(greetingsKey(book), html, { ttl: GREETINGS_TTL })
      } catch (err) {
        if (!(err instanceof ValueTooLargeError)) throw err
        log.error({ err, guestbook: book }, 'greetings too large for the cache; rendered on every request')
      }
    }
    return html
  }

  /** This process's hits and misses in the guestbook's namespace, as the page shows them. */
  async stats (): Promise<{ hits: number, misses: number }> {
    return await this.#cache.getStats({ census: false })
  }

  async sign (book: string, greeting: Greeting): Promise<void> {
    await this.#greetings.add(book, greeting)
    // The next view of this book shows the new greeting at once, on every instance.
    if (this.#toDrop.size < 1000) this.#toDrop.add(book)
    await this.#drops.run()
  }

  close (): void {
    this.#drops.stop()
  }
}
