import type { FastifyInstance } from 'fastify'
import { ValueTooLargeError, type Cache } from '../cache/index.js'
import type { GreetingsRepository } from '../guestbook/greetings.js'
import { Retry } from '../lib/retry.js'
import type { WriteLimit } from '../lib/write-limit.js'

export interface GuestbookRoutesOptions {
  greetings: GreetingsRepository
  /** The guestbook's own namespace. */
  cache: Cache
  /** Counts the greetings a client posts. */
  limitWrites: WriteLimit
}

const DEFAULT_BOOK = 'default_guestbook'
/** Seconds the rendered greetings stay cached, as in the App Engine sample. */
const GREETINGS_TTL = 10

const bookQuery = {
  type: 'object',
  properties: { guestbook_name: { type: 'string', maxLength: 100 } }
} as const

const signature = {
  type: 'object',
  required: ['content'],
  properties: {
    content: { type: 'string', minLength: 1, maxLength: 2000, pattern: '\\S' },
    author: { type: 'string', maxLength: 100 },
    _csrf: { type: 'string' }
  }
} as const

/** The App Engine guestbook: rendered greetings cached per book, dropped when someone signs. */
export default async function guestbookRoutes (app: FastifyInstance, { greetings, cache, limitWrites }: GuestbookRoutesOptions): Promise<void> {
  const cacheKey = (book: string) => `${book}:greetings`
  // Books whose cached greetings could not be dropped yet; retried until the cache takes it.
  const toDrop = new Set<string>()
  const drops = new Retry(async () => {
    for (const book of toDrop) {
      // The lock keeps a reader that fetched the old greetings before the sign from add()ing them back.
      if ((await cache.delete(cacheKey(book), { lockSeconds: GREETINGS_TTL })) === 'failed') return false
      toDrop.delete(book)
    }
    return true
  })
  app.addHook('onClose', async () => { drops.stop() })

  app.get<{ Querystring: { guestbook_name?: string } }>('/guestbook', { schema: { querystring: bookQuery } }, async (request, reply) => {
    const book = request.query.guestbook_name || DEFAULT_BOOK
    let html = await cache.get<string>(cacheKey(book))
    if (html === undefined) {
      html = await app.view('greetings', { greetings: await greetings.latest(book, 10) })
      try {
        await cache.add(cacheKey(book), html, { ttl: GREETINGS_TTL })
      } catch (err) {
        if (!(err instanceof ValueTooLargeError)) throw err
        request.log.error({ err, guestbook: book }, 'greetings too large for the cache; rendered on every request')
      }
    }
    const { hits, misses } = await cache.getStats({ census: false })
    reply.header('cache-control', 'no-store')
    return await reply.viewAsync('guestbook', {
      book,
      greetingsHtml: html,
      hits,
      misses,
      query: new URLSearchParams({ guestbook_name: book }).toString(),
      csrfToken: reply.generateCsrf()
    })
  })

  app.post<{ Querystring: { guestbook_name?: string }, Body: { content: string, author?: string } }>('/sign', {
    // After the form is parsed (the token is in it), before it is validated.
    preValidation: app.csrfProtection,
    // Only a valid, well-formed post counts against the client's budget.
    preHandler: limitWrites,
    schema: { querystring: bookQuery, body: signature }
  }, async (request, reply) => {
    const book = request.query.guestbook_name || DEFAULT_BOOK
    const author = request.body.author?.trim()
    await greetings.add(book, { content: request.body.content, date: new Date(), ...(author ? { author } : {}) })
    // The next view of this book shows the new greeting at once, on every instance.
    if (toDrop.size < 1000) toDrop.add(book)
    await drops.run()
    return await reply.redirect(`/guestbook?${new URLSearchParams({ guestbook_name: book }).toString()}`, 303)
  })
}
