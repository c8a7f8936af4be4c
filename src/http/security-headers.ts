import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

/** Our pages load nothing but our own stylesheet and icon and post forms to ourselves: the CSP says exactly that. */
export const helmetOptions: Readonly<HelmetOptions> = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'"],
      formAction: ["'self'"],
      baseUri: ["'none'"],
      frameAncestors: ["'none'"]
    }
  },
  // Cloud Run serves HTTPS only; HSTS is the front end's to send for the domain.
  strictTransportSecurity: false
}

/**
 * Helmet's headers for a fixed policy, computed once. Helmet is middleware that sets them
 * on every response; with no per-request parts (no nonces) the set never changes, so it is
 * run once against a recording response, and each reply gets the recorded headers.
 */
export function securityHeaders (options: Readonly<HelmetOptions>): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader (name: string, value: string | number | readonly string[]) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => { if (err !== undefined) throw err })
  return Object.freeze(headers)
}

/**
 * Every response carries the policy's headers, errors included. They are set as a request comes
 * in, all at once, so a route's own value for one of them replaces it; an onSend hook would have to
 * ask, header by header, whether the route had set it, on every response.
 */
export default fp<HelmetOptions>(async function securityHeadersPlugin (app, options) {
  const headers = securityHeaders(options)
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers)
    done()
  })
}, { name: 'security-headers', fastify: '5.x' })
