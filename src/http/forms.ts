import { randomBytes } from 'node:crypto'
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import type { FastifyBaseLogger, FastifyError, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

/** The key that signs form and session cookies: SESSION_SECRET, else one of this process, said in the log. */
export function cookieSecret ({ sessionSecret, onCloudRun }: { sessionSecret?: string, onCloudRun: boolean }, log: FastifyBaseLogger): string {
  if (sessionSecret === undefined && onCloudRun) {
    log.warn('SESSION_SECRET is not set: cookies are signed with a key of this instance only, so a form ' +
      'loaded from one instance fails its CSRF check on another; set it from Secret Manager')
  } else if (sessionSecret === undefined) {
    log.info('SESSION_SECRET is not set: form cookies are signed with a key of this process')
  }
  return sessionSecret ?? randomBytes(32).toString('hex')
}

/**
 * Cookies and CSRF tokens for the scope that registers it: they exist for the forms only,
 * so the visits page and the others do not pay for them.
 */
export default fp<{ secret: string }>(async function forms (app, { secret }) {
  await app.register(cookie, { secret })
  // Double-submit tokens in a signed cookie: no server-side session is written to protect a form.
  await app.register(csrf, { sessionPlugin: '@fastify/cookie', cookieOpts: { signed: true, httpOnly: true, sameSite: 'lax', secure: 'auto', path: '/' } })
}, { name: 'forms', fastify: '5.x' })

/** A form post refused by the CSRF check (a token missing, forged, or from before a restart). */
export function isCsrfFailure (err: unknown): boolean {
  return typeof (err as FastifyError | undefined)?.code === 'string' && (err as FastifyError).code.startsWith('FST_CSRF_')
}

/**
 * Whether a post was sent by one of our own pages, as browsers tell (Sec-Fetch-Site, else
 * Origin). Only then is what it carries known to be what the user typed: a post from another
 * site is someone else's text, which must not be put in our form for the user to send.
 */
export function fromOurOwnPage (request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site']
  if (site !== undefined) return site === 'same-origin'
  const origin = request.headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host === request.host
  } catch {
    return false
  }
}

/**
 * A field of a post that was not validated (the CSRF check runs first): a string of at
 * most `max` code points, cut if longer, as the form's own limit would; anything else is absent.
 */
export function typedText (fields: unknown, name: string, max: number): string | undefined {
  const value = (fields as Record<string, unknown> | undefined)?.[name]
  return typeof value === 'string' ? Array.from(value).slice(0, max).join('') : undefined
}
