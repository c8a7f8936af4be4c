import type { FastifyRequest } from 'fastify'
import Negotiator from 'negotiator'

/** The two answers a page has; the page first, for a range that fits both alike. */
const PAGE_OR_JSON = ['text/html', 'application/json']

/**
 * Whether an Accept header prefers JSON to a page; pages are the default. Also for a request
 * Fastify never parsed (src/http/error-pages.ts), so that both are negotiated alike.
 */
export function acceptPrefersJson (accept: string | undefined): boolean {
  // Negotiation costs a parse of the header: only one that names JSON can prefer it.
  if (accept === undefined || !accept.includes('json')) return false
  return new Negotiator({ headers: { accept } }).mediaType(PAGE_OR_JSON) === 'application/json'
}

/** Whether the client asked for JSON rather than a page (Accept). */
export function prefersJson (request: FastifyRequest): boolean {
  return acceptPrefersJson(request.headers.accept)
}
