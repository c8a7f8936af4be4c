import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ValueTooLargeError, type Cache } from '../cache/index.js'
import type { GreetingsRepository } from './repository.js'
import { fromOurOwnPage, isCsrfFailure, typedText } from '../http/forms.js'
import { Retry } from '../lib/retry.js'
import { sendAnswer } from '../http/error-pages.js'
import { prefersJson } from '../http/negotiation.js'
import type { WriteLimit } from '../http/write-limit.js'

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

const MAX_BOOK = 100

const bookQuery = {
  type: 'object',
  properties: { guestbook_name: { type: 'string', maxLength: MAX_BOOK } }
} as const

const MAX_CONTENT = 2000
const MAX_AUTHOR = 100

// A blank message is the handler's to refuse, with the form again: not a validation error.
const signature = {
  type: 'object',
  properties: {
    content: { type: 'string', maxLength: MAX_CONTENT },
    author: { type: 'string', maxLength: MAX_AUTHOR },
    _csrf: { type: 'string' }
  }
} as const

/** What the sign form shows besides the book: a message about the last post, and the text to put back in it. */
interface SignForm {
  notice?: string
  content?: string
  author?: string
}

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

  async function showBook (request: FastifyRequest, reply: FastifyReply, book: string, form: SignForm = {}): Promise<string> {
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
      csrfToken: reply.generateCsrf(),
      ...form
    })
  }

  app.get<{ Querystring: { guestbook_name?: string } }>('/guestbook', { schema: { querystring: bookQuery } }, async (request, reply) => {
    return await showBook(request, reply, request.query.guestbook_name || DEFAULT_BOOK)
  })

  app.post<{ Querystring: { guestbook_name?: string }, Body: { content?: string, author?: string } }>('/sign', {
    // After the form is parsed (the token is in it), before it is validated.
    preValidation: app.csrfProtection,
    // Only a valid, well-formed post counts against the client's budget.
    preHandler: limitWrites,
    schema: { querystring: bookQuery, body: signature },
    // A form that expired (open across a restart, or too old) is shown again with a fresh token,
    // with the text typed into it when the post came from our own page (see fromOurOwnPage).
    errorHandler: async (err, request, reply) => {
      if (!isCsrfFailure(err) || prefersJson(request)) throw err
      // Nothing was validated yet: the book and the fields are taken only if they fit the form.
      const asked = typedText(request.query, 'guestbook_name', MAX_BOOK + 1)
      const book = asked === undefined || asked === '' || Array.from(asked).length > MAX_BOOK ? DEFAULT_BOOK : asked
      const ours = fromOurOwnPage(request)
      reply.code(403)
      return await showBook(request, reply, book, ours
        ? { notice: 'The form had expired, so your message was not posted. Here it is again: please sign once more.', content: typedText(request.body, 'content', MAX_CONTENT), author: typedText(request.body, 'author', MAX_AUTHOR) }
        : { notice: 'The form had expired or was not sent from this page, so nothing was posted. Please write your message again.' })
    }
  }, async (request, reply) => {
    const book = request.query.guestbook_name || DEFAULT_BOOK
    const content = request.body.content ?? ''
    const author = request.body.author?.trim()
    if (content.trim() === '') {
      const notice = 'Write a message before signing.'
      if (prefersJson(request)) {
        return await sendAnswer(app, request, reply, { statusCode: 400, title: 'Not accepted', message: notice, advice: 'Send a message that is not blank.' })
      }
      return await showBook(request, reply, book, { notice, author: request.body.author })
    }
    await greetings.add(book, { content, date: new Date(), ...(author ? { author } : {}) })
    // The next view of this book shows the new greeting at once, on every instance.
    if (toDrop.size < 1000) toDrop.add(book)
    await drops.run()
    return await reply.redirect(`/guestbook?${new URLSearchParams({ guestbook_name: book }).toString()}`, 303)
  })
}
