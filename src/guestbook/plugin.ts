import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { sendAnswer } from '../http/error-pages.js'
import forms, { fromOurOwnPage, isCsrfFailure, typedText } from '../http/forms.js'
import { prefersJson } from '../http/negotiation.js'
import { repositoryFor } from '../plugins/database.js'
import { guestbookNamespace } from './cache-keys.js'
import { DatastoreGreetingsRepository } from './datastore-repository.js'
import { FirestoreGreetingsRepository } from './firestore-repository.js'
import { Guestbook } from './guestbook.js'
import { MemoryGreetingsRepository } from './memory-repository.js'
import type { GreetingsRepository } from './repository.js'

export interface GuestbookOptions {
  /** Signs the form cookies. */
  secret: string
  /** Instead of the one the app's database gives. */
  greetings?: GreetingsRepository
}

const DEFAULT_BOOK = 'default_guestbook'
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

/** The guestbook's pages: a book with its sign form, and the post that signs it. */
export default async function guestbookPlugin (app: FastifyInstance, { secret, greetings }: GuestbookOptions): Promise<void> {
  await app.register(forms, { secret })
  // Rendered greetings live 10 s anyway: replication lag is no news to them.
  const guestbook = new Guestbook({
    greetings: greetings ?? repositoryFor<GreetingsRepository>(app, {
      firestore: (db, calls) => new FirestoreGreetingsRepository(db, { calls }),
      datastore: (client, calls) => new DatastoreGreetingsRepository(client, { calls }),
      memory: () => new MemoryGreetingsRepository()
    }),
    cache: app.cache.namespaced(guestbookNamespace(app.cache.namespace), { reads: 'replica' }),
    render: async (latest) => await app.view('guestbook/greetings', { greetings: latest })
  })
  app.addHook('onClose', async () => { guestbook.close() })

  async function showBook (request: FastifyRequest, reply: FastifyReply, book: string, form: SignForm = {}): Promise<string> {
    const greetingsHtml = await guestbook.greetingsHtml(book, request.log)
    const { hits, misses } = await guestbook.stats()
    reply.header('cache-control', 'no-store')
    return await reply.viewAsync('guestbook/guestbook', {
      book,
      greetingsHtml,
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
    preHandler: app.limitWrites,
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
    await guestbook.sign(book, { content, date: new Date(), ...(author ? { author } : {}) })
    return await reply.redirect(`/guestbook?${new URLSearchParams({ guestbook_name: book }).toString()}`, 303)
  })
}
