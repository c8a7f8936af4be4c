import type { FastifyInstance } from 'fastify'
import { HotKeys, MemoryMinuteStore, MinuteRecorder, RedisMinuteStore, type MinuteStore } from './history.js'

/**
 * One cache operation in this many is counted for the hot keys: a random gap, then a map update;
 * the others cost a comparison.
 */
export const SAMPLE_EVERY = 50

/** What every instance records for the cache console, whether or not it serves the console itself. */
export interface Recording {
  hotKeys: HotKeys
  minutes: MinuteStore
  recorder: MinuteRecorder
  /** Sends this instance's pending counts and samples now (the console's page does, before it reads). */
  flush: () => Promise<void>
}

/** The sampler to hand the cache (its sampleKeys option) before the cache exists. */
export function hotKeysSampler (): HotKeys {
  return new HotKeys(SAMPLE_EVERY)
}

/**
 * Starts adding this instance's per-minute counts and sampled keys to the shared minutes (Redis
 * when the app has it): on every instance, so a console served by any one of them, or by a service
 * of its own on the same Redis, sees the traffic of all. Stopped, with a last flush, when the app closes.
 */
export function startRecording (app: FastifyInstance, hotKeys: HotKeys, recordEveryMs = 10_000): Recording {
  const minutes = app.hasDecorator('redis') ? new RedisMinuteStore(app.redis, app.cache.namespace) : new MemoryMinuteStore()
  const recorder = new MinuteRecorder(app.cache, minutes, recordEveryMs)
  const log = app.log.child({ component: 'cache console' })
  // A view, not a ledger: what the store refused is dropped, and logged at debug as the cache's own misses are.
  const onError = (err: unknown): void => { log.debug({ err }, 'cache console history not written') }
  hotKeys.start(minutes, onError)
  recorder.start(onError)
  // Together, so a Redis that does not answer holds shutdown for one command timeout, not two.
  app.addHook('onClose', async () => { await Promise.all([hotKeys.stop(), recorder.stop().catch(onError)]) })
  return {
    hotKeys,
    minutes,
    recorder,
    flush: async () => { await Promise.all([hotKeys.flush(), recorder.record()]).catch(onError) }
  }
}
