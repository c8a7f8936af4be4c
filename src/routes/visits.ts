import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WriteLimit } from '../lib/write-limit.js'
import type { RecentVisits } from '../visits/recent-visits.js'
import type { Visit } from '../visits/visit.js'
import { visitorOf, type IpMode } from '../visits/visitor.js'

export interface VisitsRoutesOptions {
  recentVisits: RecentVisits
  limit: number
  ipMode: IpMode
  /** Counts the visits this client stores. */
  limitWrites: WriteLimit
}

const visitsBody = {
  type: 'object',
  required: ['visits'],
  properties: {
    visits: {
      type: 'array',
      items: {
        type: 'object',
        required: ['visitor', 'timestamp'],
        properties: { visitor: { type: 'string' }, timestamp: { type: 'string', format: 'date-time' } }
      }
    }
  }
} as const

export function prefersJson (request: FastifyRequest): boolean {
  return request.accepts().type(['html', 'json']) === 'json'
}

export default async function visitsRoutes (app: FastifyInstance, { recentVisits, limit, ipMode, limitWrites }: VisitsRoutesOptions): Promise<void> {
  // A version of the list is rendered once: a hit sends the same bytes again.
  const pages = new WeakMap<readonly Visit[], string>()

  // A HEAD would record a visit too (uptime checks, link previews): refuse it.
  app.head('/', async (_request, reply) => await reply.code(405).header('allow', 'GET').send())
  app.get('/', { exposeHeadRoute: false, schema: { response: { 200: visitsBody } } }, async (request, reply) => {
    const visitor = visitorOf(request.ip, request.headers['user-agent'], ipMode)
    const { visits, cache } = await recentVisits.visit(visitor, { beforeWrite: async () => { await limitWrites(request) } })
    // The page records visits: no shared cache may answer for us.
    reply.header('x-cache', cache).header('cache-control', 'no-store').header('vary', 'Accept')
    if (prefersJson(request)) return { visits }
    let page = pages.get(visits)
    if (page === undefined) {
      page = await app.view('index', { visits, limit })
      pages.set(visits, page)
    }
    return await reply.type('text/html; charset=utf-8').send(page)
  })
}
