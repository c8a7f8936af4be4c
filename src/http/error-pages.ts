import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { RepositoryUnavailableError } from '../plugins/bounded-calls.js'
import { TooManyWritesError } from './write-limit.js'
import { acceptPrefersJson, prefersJson } from './negotiation.js'

// Not `import … from 'node:http'`: an ES import of node:http builds every export of it, the web
// fetch classes included (about 30 ms at start-up); the module object itself does not.
const { STATUS_CODES } = process.getBuiltinModule('node:http')

/** What a visitor is told about an error: the same words on the page and in the JSON. */
export interface ErrorAnswer {
  statusCode: number
  title: string
  /** One sentence of what happened: the page's first line and the JSON's message. */
  message: string
  /** What to do about it. */
  advice: string
  /** Fastify's or a plugin's error code, for JSON clients that branch on it. */
  code?: string
  headers?: Record<string, string>
}

const CHECK_ADDRESS = 'Check the address, or start again from the home page.'

/** The errors that reach no handler: the HTTP parser rejected the request before Fastify saw it. */
const PARSER_ERRORS: Record<string, ErrorAnswer> = {
  HPE_HEADER_OVERFLOW: {
    statusCode: 431,
    title: 'Request too large',
    message: 'The request\'s address or headers (usually its cookies) are larger than this site accepts.',
    advice: 'Delete this site\'s cookies in your browser, or use a shorter address, and try again.'
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    statusCode: 408,
    title: 'Request timed out',
    message: 'The request did not arrive completely in time.',
    advice: 'Check your connection and try again.'
  },
  default: {
    statusCode: 400,
    title: 'Bad request',
    message: 'The request was not valid HTTP.',
    advice: CHECK_ADDRESS
  }
}

function parserAnswer (code: string | undefined): ErrorAnswer {
  return PARSER_ERRORS[code ?? ''] ?? PARSER_ERRORS.default!
}

/** Fastify's validation errors as one sentence: which field of the form or the address, and what it must be. */
function describeValidation (err: FastifyError): string {
  const where = err.validationContext === 'body' ? 'the form' : 'the address'
  const problems = (err.validation ?? []).map((problem) => {
    const field = typeof problem.params.missingProperty === 'string'
      ? problem.params.missingProperty
      : problem.instancePath.split('/').filter((part) => part !== '').join('.')
    return `${field === '' ? 'it' : field} ${(problem.message ?? 'is not valid').replace('must NOT', 'must not')}`
  })
  return `In ${where}, ${problems.length === 0 ? 'a value is not valid' : problems.join('; ')}.`
}

/** What to tell the visitor about an error a route, a hook or Fastify raised. */
export function answerFor (err: FastifyError): ErrorAnswer {
  if (err instanceof RepositoryUnavailableError) {
    return {
      statusCode: 503,
      title: 'Temporarily unavailable',
      message: 'The database is not answering right now.',
      advice: 'Please try again in a few seconds.',
      headers: { 'retry-after': '5' }
    }
  }
  if (err instanceof TooManyWritesError) {
    return {
      statusCode: 429,
      title: 'Too many changes',
      message: err.message,
      advice: 'Reading the pages still works meanwhile.',
      headers: { 'retry-after': String(err.retryAfterSeconds) }
    }
  }
  const code = typeof err.code === 'string' ? err.code : undefined
  const withCode = code === undefined ? {} : { code }
  if (err.validation !== undefined) {
    return { statusCode: 400, title: 'Not accepted', message: describeValidation(err), advice: 'Go back, correct it and send it again.', ...withCode }
  }
  if (code?.startsWith('FST_CSRF_') === true) {
    return {
      statusCode: 403,
      title: 'Form expired',
      message: 'The form was too old, or not sent from this site, so nothing was changed.',
      advice: 'Open the page again, fill in the form and send it.',
      ...withCode
    }
  }
  const byStatus: Record<number, Omit<ErrorAnswer, 'statusCode'>> = {
    400: { title: 'Bad request', message: 'The address or the form could not be read.', advice: CHECK_ADDRESS },
    413: { title: 'Too large', message: 'What was sent is larger than this site accepts.', advice: 'Go back, send something shorter.' },
    414: { title: 'Address too long', message: 'Part of the address is longer than this site accepts.', advice: CHECK_ADDRESS },
    415: { title: 'Not accepted', message: 'What was sent is in a format this site does not read.', advice: 'Send the form from the site\'s own page.' }
  }
  const statusCode = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  const known = byStatus[statusCode]
  if (known !== undefined) return { statusCode, ...known, ...withCode }
  if (statusCode < 500) {
    return { statusCode, title: STATUS_CODES[statusCode] ?? 'Bad request', message: 'This request could not be served as sent.', advice: CHECK_ADDRESS, ...withCode }
  }
  return { statusCode: 500, title: 'Something went wrong', message: 'The server failed to answer this request.', advice: 'Please try again in a moment.' }
}

/** The JSON a JSON client gets: Fastify's shape, with our message. */
function jsonOf ({ statusCode, message, code }: ErrorAnswer): { statusCode: number, error: string, message: string, code?: string } {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, ...(code === undefined ? {} : { code }) }
}

async function pageOf (app: FastifyInstance, { statusCode, title, message, advice }: ErrorAnswer): Promise<string> {
  return await app.view('error', { statusCode, reason: STATUS_CODES[statusCode] ?? 'Error', title, message, advice })
}

/** Sends an answer: the site's page, or JSON to a client that prefers it; never stored by a cache. */
export async function sendAnswer (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, answer: ErrorAnswer, json = prefersJson(request)): Promise<FastifyReply> {
  reply.code(answer.statusCode).header('cache-control', 'no-store').header('vary', 'Accept')
  for (const [name, value] of Object.entries(answer.headers ?? {})) reply.header(name, value)
  if (json) return await reply.type('application/json; charset=utf-8').send(jsonOf(answer))
  return await reply.type('text/html; charset=utf-8').send(await pageOf(app, answer))
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

/** The Accept header of a request the parser gave up on, if the part that arrived has one. */
function acceptOf (rawPacket: unknown): string | undefined {
  // Node gives the bytes received as a Buffer (Fastify's types say otherwise).
  if (!Buffer.isBuffer(rawPacket)) return undefined
  return /\r\naccept:[ \t]*([^\r\n]*)/i.exec(rawPacket.toString('latin1'))?.[1]
}

/**
 * Answers for errors raised before a request reaches a route, which no hook or error
 * handler sees. The HTTP parser's (431 for oversized headers, 400 for bad HTTP, 408 for a
 * request that never finished) are written straight to the socket, negotiated on the
 * Accept header if it arrived; their pages are rendered once the view engine is ready,
 * and until then the answer is JSON. Fastify's URL errors (a malformed or over-long path)
 * get the usual answer, with the security headers the hooks would have added.
 */
export class EarlyErrors {
  #pages = new Map<number, Buffer>()
  #headers: Readonly<Record<string, string>> = {}

  /** Fastify's clientErrorHandler. */
  readonly clientError = (err: ConnectionError, socket: Socket): void => {
    // A reset connection has no one to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const answer = parserAnswer(err.code)
    const page = this.#pages.get(answer.statusCode)
    const json = page === undefined || acceptPrefersJson(acceptOf(err.rawPacket as unknown))
    const body = json ? Buffer.from(JSON.stringify(jsonOf(answer))) : page
    const headers = {
      ...this.#headers,
      'content-type': json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
      connection: 'close'
    }
    if (socket.writable) {
      const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
      socket.write(`HTTP/1.1 ${answer.statusCode} ${STATUS_CODES[answer.statusCode]}\r\n${head}\r\n`)
      socket.write(body)
    }
    socket.destroySoon()
  }

  /** Fastify's frameworkErrors. */
  readonly frameworkError = (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    // The request is Fastify's bare one: no plugin's decorators (request.accepts) are on it.
    reply.headers(this.#headers)
    sendAnswer(request.server, request, reply, answerFor(err), prefersJson(request)).catch((error: unknown) => { reply.send(error) })
  }

  async prepare (app: FastifyInstance, headers: Readonly<Record<string, string>>): Promise<void> {
    this.#headers = headers
    for (const code of Object.keys(PARSER_ERRORS)) {
      const answer = parserAnswer(code)
      this.#pages.set(answer.statusCode, Buffer.from(await pageOf(app, answer)))
    }
  }
}

export interface ErrorPagesOptions {
  /** Made before the instance (its handlers are server options); prepared here. */
  early: EarlyErrors
  /** The security headers every response carries, for the answers the hooks never see. */
  securityHeaders: Readonly<Record<string, string>>
}

/**
 * Every error a browser can reach is the site's page (its status, what happened, what
 * to do, a link home), and JSON for a client that prefers it: errors of routes and
 * hooks, unknown addresses and methods, Fastify's own URL errors and the parser's.
 */
export default fp<ErrorPagesOptions>(async function errorPages (app, { early, securityHeaders }) {
  app.setErrorHandler(async (error, request, reply) => {
    const err = error as FastifyError
    const answer = answerFor(err)
    if (err instanceof RepositoryUnavailableError) request.log.error({ err }, 'repository unavailable')
    else if (answer.statusCode >= 500) request.log.error({ err }, err.message)
    else if (answer.statusCode !== 429) request.log.info({ err }, err.message)
    return await sendAnswer(app, request, reply, answer)
  })

  app.setNotFoundHandler(async (request, reply) => {
    // A path that exists for other methods is a 405 naming them (POST / and HEAD / among them).
    const allowed = METHODS.filter((method) => method !== request.method && app.findRoute({ method, url: request.url }) !== null)
    if (allowed.length === 0) {
      return await sendAnswer(app, request, reply, { statusCode: 404, title: 'Page not found', message: 'There is no page at this address.', advice: CHECK_ADDRESS })
    }
    return await sendAnswer(app, request, reply, {
      statusCode: 405,
      title: 'Not allowed',
      message: `This address takes ${allowed.join(' and ')} requests, not ${request.method}.`,
      advice: 'Open it from a link or the address bar.',
      headers: { allow: allowed.join(', ') }
    })
  })

  app.addHook('onReady', async () => { await early.prepare(app, securityHeaders) })
}, { name: 'error-pages', fastify: '5.x', dependencies: ['view'] })
