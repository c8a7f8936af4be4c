import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'

/** The same relative path from src/routes and from dist/routes. */
const publicDir = new URL('../../public/', import.meta.url)

/** The stylesheet, read once; a separate file lets the CSP forbid inline styles. */
export default async function assetRoutes (app: FastifyInstance): Promise<void> {
  const css = await readFile(fileURLToPath(new URL('site.css', publicDir)))
  app.get('/site.css', async (_request, reply) => {
    return await reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=3600').send(css)
  })
}
