import type { Cache } from './cache.js'

type Callback<T = void> = (err?: unknown, value?: T) => void

/** What a session needs for its TTL; the rest is the session framework's. */
interface SessionData {
  cookie?: { maxAge?: number | null }
}

/**
 * An express-session / @fastify/session store on the cache layer: sessions live in
 * Redis (or memory) with the cookie's lifetime as their TTL. It fails open like the
 * cache: with Redis down a session reads as absent and a write is dropped, so pages
 * still render and only what the session held (a flash message) may be lost.
 */
export class CacheSessionStore<S extends SessionData = SessionData> {
  readonly #cache: Cache
  readonly #defaultTtl: number

  constructor (cache: Cache, { defaultTtlSeconds = 86_400 }: { defaultTtlSeconds?: number } = {}) {
    this.#cache = cache
    this.#defaultTtl = defaultTtlSeconds
  }

  get (sessionId: string, callback: Callback<S | null>): void {
    settle(this.#cache.get<S>(sessionId).then((session) => session ?? null), callback)
  }

  set (sessionId: string, session: S, callback: Callback): void {
    const maxAge = session.cookie?.maxAge
    const ttl = typeof maxAge === 'number' && maxAge > 0 ? Math.ceil(maxAge / 1000) : this.#defaultTtl
    // JSON keeps what a session is made of; the cookie object round-trips as plain data.
    settle(this.#cache.set(sessionId, JSON.parse(JSON.stringify(session)), { ttl }).then(() => undefined), callback)
  }

  destroy (sessionId: string, callback: Callback): void {
    settle(this.#cache.delete(sessionId).then(() => undefined), callback)
  }
}

/** Calls back outside the promise chain, so a throwing callback is not swallowed as a rejection. */
function settle<T> (promise: Promise<T>, callback: Callback<T>): void {
  promise.then(
    (value) => { process.nextTick(callback, undefined, value) },
    (err: unknown) => { process.nextTick(callback, err) }
  )
}
