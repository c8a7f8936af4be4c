import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import view from '@fastify/view'
import { Eta } from 'eta'

/** The same relative path from src/plugins and from dist/plugins. */
const templatesDir = fileURLToPath(new URL('../../templates', import.meta.url))

export default fp(async function viewPlugin (app) {
  // autoEscape is Eta's default; stated because every visitor string depends on it.
  const eta = new Eta({ views: templatesDir, autoEscape: true, cache: true })
  await app.register(view, { engine: { eta }, root: templatesDir, production: true })
}, { name: 'view', fastify: '5.x' })
