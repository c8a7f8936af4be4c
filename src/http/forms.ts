import type { FastifyError, FastifyRequest } from 'fastify'

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
