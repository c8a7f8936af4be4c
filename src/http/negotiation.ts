import type { FastifyRequest } from 'fastify'

/** Whether the client asked for JSON rather than a page (Accept); pages are the default. */
export function prefersJson (request: FastifyRequest): boolean {
  // Negotiation costs a parse of the header: only one that names JSON can prefer it.
  const accept = request.headers.accept
  if (accept === undefined || !accept.includes('json')) return false
  return request.accepts().type(['html', 'json']) === 'json'
}
