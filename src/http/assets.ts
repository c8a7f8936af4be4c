import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { projectRoot } from '../lib/project-root.js'

const publicDir = join(projectRoot, 'public')

/** The stylesheet and the icon, read once; a separate stylesheet lets the CSP forbid inline styles. */
export default async function assetRoutes (app: FastifyInstance): Promise<void> {
  const read = async (name: string) => await readFile(join(publicDir, name))
  const assets = [
    { url: '/site.css', type: 'text/css; charset=utf-8', body: await read('site.css'), maxAge: 3600 },
    // The pages link the SVG; the ICO (the same icon drawn at 32 px) is for clients that ask
    // for /favicon.ico without reading a page. Icons change rarely: a browser keeps them a week.
    { url: '/favicon.svg', type: 'image/svg+xml', body: await read('favicon.svg'), maxAge: 604_800 },
    { url: '/favicon.ico', type: 'image/x-icon', body: await read('favicon.ico'), maxAge: 604_800 }
  ]
  for (const { url, type, body, maxAge } of assets) {
    app.get(url, async (_request, reply) => await reply.type(type).header('cache-control', `public, max-age=${maxAge}`).send(body))
  }
}
