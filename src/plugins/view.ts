import { join } from 'node:path'
import fp from 'fastify-plugin'
import view from '@fastify/view'
import { Eta } from 'eta'
import { fragmentRenderer, type Cache } from '@visitme/memcache'
import { projectRoot } from '../lib/project-root.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The cache of template fragments: delete a key here to render that block again. */
    fragments: Cache
  }
}

const templatesDir = join(projectRoot, 'templates')

export default fp(async function viewPlugin (app) {
  // autoEscape is Eta's default; stated because every visitor string depends on it.
  const eta = new Eta({ views: templatesDir, autoEscape: true, cache: true })
  const fragments = app.cache.namespaced(`${app.cache.namespace}/fragments`)
  app.decorate('fragments', fragments)
  const fragment = fragmentRenderer(fragments, (err, key) => {
    app.log.warn({ err, fragment: key }, 'template fragment not cached; it is rendered each time')
  })
  // We pass every template its data: without this, @fastify/view would give each reply an empty
  // `locals` object in a hook on every request, rendered or not.
  if (!app.hasReplyDecorator('locals')) app.decorateReply('locals', null)
  // Templates get `await it.fragment(key, { ttl }, render)` for blocks rendered once and served from the cache.
  await app.register(view, { engine: { eta }, root: templatesDir, production: true, defaultContext: { fragment }, options: { async: true } })
}, { name: 'view', fastify: '5.x', dependencies: ['cache'] })
