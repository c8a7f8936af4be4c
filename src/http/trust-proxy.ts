import type { FastifyServerOptions } from 'fastify'

/**
 * Proxy trust by hop count. Fastify 5.12+ ignores a numeric trustProxy, so the
 * count is a function: the first `hops` addresses from the socket inward are
 * proxies, and the client is the next address of X-Forwarded-For.
 */
export function trustHops (hops: number): FastifyServerOptions['trustProxy'] {
  return hops > 0 ? (_address: string, hop: number) => hop < hops : false
}
