import { randomUUID } from 'node:crypto'
import type { Datastore, Entity } from '@google-cloud/datastore'
import type { BoundedCalls } from '../plugins/bounded-calls.js'
import { Status } from '../plugins/database.js'
import { bounded } from '../plugins/datastore.js'
import type { Greeting, GreetingsRepository } from './repository.js'

/** The App Engine guestbook's kinds: each book an entity group, `Greeting`s under `Guestbook`/<name>. */
export const GUESTBOOK_KIND = 'Guestbook'
export const GREETING_KIND = 'Greeting'

/**
 * Greetings as the App Engine guestbook's NDB model stores them: kind `Greeting` under the
 * ancestor key `Guestbook`/<book name>, with `author` (a string, null for an anonymous
 * person), `content` and `date`; read newest first by an ancestor query, which is strongly
 * consistent (and, as on App Engine, one book takes about one write a second).
 */
export class DatastoreGreetingsRepository implements GreetingsRepository {
  readonly #client: Datastore
  readonly #calls: BoundedCalls

  constructor (client: Datastore, { calls }: { calls: BoundedCalls }) {
    this.#client = client
    this.#calls = calls
  }

  async add (guestbook: string, { author, content, date }: Greeting): Promise<void> {
    // Named before the first attempt: a commit the client retries after a lost answer finds its own entity, not a copy.
    const key = this.#client.key([GUESTBOOK_KIND, guestbook, GREETING_KIND, randomUUID()])
    await this.#calls.run('store a greeting', undefined, async () => {
      try {
        // Nothing queries the text: unindexed, it costs no index write and may pass the 1500 bytes of an indexed string.
        await this.#client.insert({ key, data: { author: author ?? null, content, date }, excludeFromIndexes: ['author', 'content'] })
      } catch (err) {
        if ((err as { code?: unknown }).code !== Status.ALREADY_EXISTS) throw err
      }
    })
  }

  async latest (guestbook: string, limit: number): Promise<Greeting[]> {
    const query = this.#client.createQuery(GREETING_KIND)
      .hasAncestor(this.#client.key([GUESTBOOK_KIND, guestbook]))
      .order('date', { descending: true })
      .limit(limit)
    const [entities] = await this.#calls.run('read the greetings', undefined, async (ms) => await this.#client.runQuery(query, bounded(ms)))
    return entities.map((entity: Entity) => ({
      ...(typeof entity.author === 'string' ? { author: entity.author } : {}),
      content: String(entity.content ?? ''),
      date: entity.date instanceof Date ? entity.date : new Date(0)
    }))
  }
}
