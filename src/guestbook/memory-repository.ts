import type { Greeting, GreetingsRepository } from './repository.js'

export class MemoryGreetingsRepository implements GreetingsRepository {
  readonly #books = new Map<string, Greeting[]>()

  async add (guestbook: string, greeting: Greeting): Promise<void> {
    const greetings = this.#books.get(guestbook) ?? []
    greetings.unshift({ ...greeting })
    // Bounded like the visits: the embedded mode must not grow without end.
    greetings.length = Math.min(greetings.length, 100)
    this.#books.set(guestbook, greetings)
  }

  async latest (guestbook: string, limit: number): Promise<Greeting[]> {
    return (this.#books.get(guestbook) ?? []).slice(0, limit).map((g) => ({ ...g }))
  }
}
