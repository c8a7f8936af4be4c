import { createHash, randomUUID } from 'node:crypto'
import { encode } from './codec.js'
import type { CacheCore } from './core.js'
import { storeKey, type NamespaceOption } from './keys.js'
import { FAILED } from './runner.js'
import { ttlMs } from './ttl.js'

export interface MemoizeOptions<A extends unknown[]> extends NamespaceOption {
  /** Seconds a result is fresh. */
  ttl: number
  /** The function's name in keys (default: its own name), or a key built from the arguments. */
  key?: string | ((...args: A) => string)
  /** Seconds after ttl during which the old result is still served while one caller refreshes it. */
  grace?: number
  /** Seconds one process may compute a result before others stop waiting for it (default 10). */
  lockSeconds?: number
}

export type Memoized<A extends unknown[], R> = (...args: A) => Promise<R>

/** What a memoized result is stored as: the value, the function's generation, and when it goes stale. */
interface MemoEntry {
  v?: unknown
  g: number
  f: number
}

/** What memoize asks of the view it was called on (a Cache), named here so that this module needs no import of it. */
export interface MemoView {
  readonly namespace: string
  readonly reads: 'primary' | 'replica'
  set: (key: string, value: unknown, options: { ttl: number, namespace: string }) => Promise<boolean>
  delete: (key: string, options: { namespace: string }) => Promise<'deleted' | 'missing' | 'failed'>
  incr: (key: string, options: { initialValue: number, namespace: string }) => Promise<unknown>
}

interface Memo {
  name: string
  /** The view it was memoized on, and the namespace its results live in. */
  cache: MemoView
  namespace: string
  keyOf: (args: unknown[]) => string
  fn: (...args: unknown[]) => unknown
  ttl: number
  grace: number
  lockSeconds: number
}

/**
 * Memoized functions of one store: a result per arguments, computed once at a time in this
 * process (single flight) and across processes (a lock in the store), retired all at once by
 * a new generation, and with grace served stale while one caller refreshes it.
 */
export class Memoizer {
  /** Computations running in this process, by key: concurrent callers share them. */
  readonly #inFlight = new Map<string, Promise<unknown>>()
  /** Both the original and the memoized function lead to the memo. */
  readonly #memos = new WeakMap<Function, Memo>()

  constructor (readonly core: CacheCore) {}

  memoize<A extends unknown[], R> (cache: MemoView, fn: (...args: A) => R | Promise<R>, options: MemoizeOptions<A>): Memoized<A, R> {
    const name = typeof options.key === 'string' ? options.key : fn.name
    if (name === '') throw new TypeError('memoize needs a name for an anonymous function: pass options.key')
    ttlMs(options.ttl)
    const custom = typeof options.key === 'function' ? options.key : undefined
    const memo: Memo = {
      name,
      cache,
      namespace: options.namespace ?? cache.namespace,
      keyOf: (args) => `memo:${name}:${custom === undefined ? createHash('sha256').update(encode(args)).digest('base64url') : custom(...(args as A))}`,
      fn: fn as (...args: unknown[]) => unknown,
      ttl: options.ttl,
      grace: options.grace ?? 0,
      lockSeconds: options.lockSeconds ?? 10
    }
    const memoized = async (...args: A): Promise<R> => await this.#call(memo, args) as R
    this.#memos.set(fn, memo)
    this.#memos.set(memoized, memo)
    return memoized
  }

  /** Forgets the result for these arguments, or with none, every result of the function. */
  async forget (fn: Function, args: unknown[]): Promise<boolean> {
    const memo = this.#memos.get(fn)
    if (memo === undefined) throw new TypeError(`${fn.name || 'this function'} was not memoized by this cache`)
    const { cache, namespace } = memo
    if (args.length > 0) return (await cache.delete(memo.keyOf(args), { namespace })) !== 'failed'
    // Every stored result names the generation it was computed in: a new one retires them all.
    return (await cache.incr(`memo:${memo.name}`, { initialValue: 0, namespace })) !== undefined
  }

  async #call (memo: Memo, args: unknown[]): Promise<unknown> {
    const key = memo.keyOf(args)
    // The generation is only a counter read along: it is not a hit or a miss of the memo.
    const [found, generation] = await this.core.read([key, `memo:${memo.name}`], memo.namespace, 1, memo.cache.reads)
    if (found === FAILED || generation === FAILED) return await memo.fn(...args)
    const current = Number(generation?.value ?? 0)
    // A computation started before forget() is never joined by a call made after it.
    const flightKey = `${memo.namespace}\u0000${key}\u0000${current}`
    const entry = found?.value as MemoEntry | undefined
    if (entry !== undefined && entry.g === current) {
      if (Date.now() < entry.f) return entry.v
      if (Date.now() < entry.f + memo.grace * 1000) {
        this.#flight(flightKey, () => this.#compute(memo, args, key, current)).catch((err: unknown) => {
          this.core.log.warn({ err, memo: memo.name }, 'refreshing a memoized result failed; the stale one is served')
        })
        return entry.v
      }
    }
    return await this.#flight(flightKey, () => this.#compute(memo, args, key, current))
  }

  #flight (flightKey: string, run: () => Promise<unknown>): Promise<unknown> {
    const running = this.#inFlight.get(flightKey)
    if (running !== undefined) return running
    const flight = run().finally(() => this.#inFlight.delete(flightKey))
    this.#inFlight.set(flightKey, flight)
    return flight
  }

  /** Runs the function under a short lock, so that only one process computes the key at a time. */
  async #compute (memo: Memo, args: unknown[], key: string, generation: number): Promise<unknown> {
    const { cache, namespace, ttl, grace } = memo
    const lockKey = `${key}:lock:${generation}`
    const lockMs = memo.lockSeconds * 1000
    const acquiredAt = Date.now()
    const lockEntry = { key: storeKey(lockKey, namespace), value: '1', casToken: randomUUID(), ttlMs: lockMs }
    const lock = await this.core.runner.run(namespace, (store) => store.write('add', [lockEntry]))
    if (lock !== FAILED && lock[0] === false) {
      // Another process computes it: wait for its result, until its lock goes (done, failed or expired).
      const deadline = Date.now() + lockMs
      while (Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        // Read where the lock and the result are written: a replica may not have them yet.
        const [found, held] = await this.core.read([key, lockKey], namespace, 0, 'primary')
        if (found === FAILED || held === FAILED) break
        const entry = found?.value as MemoEntry | undefined
        if (entry !== undefined && entry.g === generation && Date.now() < entry.f) return entry.v
        if (held === undefined) break
      }
    }
    try {
      const value = await memo.fn(...args)
      // ttl 0 is memcache's "no expiry": fresh for good, and kept for good.
      const entry: MemoEntry = { v: value, g: generation, f: ttl === 0 ? Number.MAX_SAFE_INTEGER : Date.now() + ttlMs(ttl) }
      try {
        await cache.set(key, entry, { ttl: ttl === 0 ? 0 : ttl + grace, namespace })
      } catch (err) {
        this.core.log.warn({ err, memo: memo.name }, 'a memoized result could not be cached; it is returned uncached')
      }
      return value
    } finally {
      // A lock that has expired may be someone else's by now: leave it to its own expiry.
      if (lock !== FAILED && lock[0] === true && Date.now() - acquiredAt < lockMs - 100) await cache.delete(lockKey, { namespace })
    }
  }
}
