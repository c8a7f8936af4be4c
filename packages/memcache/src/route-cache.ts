import { coreOf, type Cache } from './cache.js'
import { FAILED } from './runner.js'

/** A response as the route cache keeps it. */
export interface CachedResponse {
  status: number
  headers: Record<string, string | string[]>
  body: string | Buffer
}

interface Stored {
  response: CachedResponse
  /** Each tag's generation when the response was computed. */
  tags: Record<string, number>
}

/** What the request looked like when it was looked up, to store the response under. */
export interface RouteCacheTicket {
  key: string
  tags: Record<string, number>
}

/** Headers that describe one connection or one transfer, never a cached response. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'content-length', 'x-cache', 'set-cookie'])

/**
 * Whole responses by key, invalidated by key or by tag. A tag is a counter: invalidating
 * it bumps the counter, and a response stored under an older count is a miss.
 */
export class RouteCache {
  constructor (readonly cache: Cache) {}

  /** The cached response, or a ticket to store the fresh one with. */
  async lookup (key: string, tags: readonly string[]): Promise<{ hit?: CachedResponse, ticket: RouteCacheTicket }> {
    // The tags' generations are read along: only the response counts as a hit or a miss.
    const [found, ...counts] = await coreOf(this.cache).read([`r:${key}`, ...tags.map((tag) => `t:${tag}`)], this.cache.namespace, 1, this.cache.reads)
    const value = (read: typeof found) => read === FAILED ? undefined : read?.value
    const generations = Object.fromEntries(tags.map((tag, i) => [tag, Number(value(counts[i]) ?? 0)]))
    const stored = value(found) as Stored | undefined
    const fresh = stored !== undefined && tags.every((tag) => stored.tags[tag] === generations[tag])
    return { hit: fresh ? stored.response : undefined, ticket: { key, tags: generations } }
  }

  async store (ticket: RouteCacheTicket, response: CachedResponse, ttl: number): Promise<boolean> {
    const headers = Object.fromEntries(Object.entries(response.headers).filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase())))
    const stored: Stored = { response: { ...response, headers }, tags: ticket.tags }
    return await this.cache.set(`r:${ticket.key}`, stored, { ttl })
  }

  async invalidate (key: string): Promise<boolean> {
    return (await this.cache.delete(`r:${key}`)) !== 'failed'
  }

  async invalidateTags (...tags: string[]): Promise<boolean> {
    const bumped = await this.cache.offsetMulti(Object.fromEntries(tags.map((tag) => [`t:${tag}`, 1])), { initialValue: 0 })
    return Object.values(bumped).every((value) => value !== undefined)
  }
}

/**
 * Caches a block of rendered HTML until it expires or its key is deleted. In an eta
 * template rendered with { async: true }:
 *   <%~ await it.fragment('task:' + task.id, { ttl: 300 }, () => include('./task-row', { task })) %>
 */
export function fragmentRenderer (cache: Cache, onUncacheable: (err: unknown, key: string) => void = () => {}) {
  return async function fragment (key: string, { ttl = 0 }: { ttl?: number }, render: () => string | Promise<string>): Promise<string> {
    const found = await cache.lookup<string>(key)
    if (found.status === 'hit' && typeof found.value === 'string') return found.value
    const html = await render()
    // A block too large for the cache is rendered every time rather than failing the page.
    await cache.set(key, html, { ttl }).catch((err: unknown) => { onUncacheable(err, key) })
    return html
  }
}
