import type { FastifyInstance } from 'fastify'
import type { Cache } from '../cache/index.js'
import type { VisitsRepository } from '../visits/repository.js'

export interface HealthRoutesOptions {
  cache: Cache
  repository: VisitsRepository
  /** A Firestore answer is reused this long, so probes do not turn into load. */
  probeTtlMs?: number
  /** Kept under Cloud Run's default 1 s probe timeout. */
  probeTimeoutMs?: number
  /**
   * The start-up call of a new client, which sets up its channel and may outlast the probe
   * timeout: until it ends Firestore is `starting`, not `down`, and its answer is the first state.
   */
  warmUp?: Promise<void>
}

type State = 'up' | 'down' | 'starting' | 'embedded'

function cachedProbe (probe: () => Promise<void>, ttlMs: number, timeoutMs: number, warmUp?: Promise<void>): () => Promise<State> {
  let last: { state: State, at: number } | undefined
  let running: Promise<State> | undefined
  let warming = warmUp?.then(() => 'up' as const, () => 'down' as const).then((state) => {
    last = { state, at: Date.now() }
    warming = undefined
    return state
  })
  return async () => {
    if (last !== undefined && Date.now() - last.at < ttlMs) return last.state
    if (warming !== undefined) {
      return await Promise.race([warming, new Promise<State>((resolve) => setTimeout(resolve, timeoutMs, 'starting').unref())])
    }
    running ??= Promise.race([
      probe().then(() => 'up' as const, () => 'down' as const),
      new Promise<State>((resolve) => setTimeout(resolve, timeoutMs, 'down').unref())
    ]).then((state) => {
      last = { state, at: Date.now() }
      running = undefined
      return state
    })
    return await running
  }
}

/**
 * Always 200 while the process serves: the dependencies' states are reported,
 * never turned into a failed check, so a cache outage cannot take instances down.
 */
export default async function healthRoutes (app: FastifyInstance, { cache, repository, probeTtlMs = 5000, probeTimeoutMs = 800, warmUp }: HealthRoutesOptions): Promise<void> {
  const firestore = cachedProbe(() => repository.ping(), probeTtlMs, probeTimeoutMs, warmUp)
  app.get('/health', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    const redis = cache.store.kind === 'memory' ? 'embedded' : cache.available ? 'up' : 'down'
    // Named after the store the data lives in: an existing Datastore-mode database, or Firestore (embedded: memory).
    if (repository.kind === 'datastore') return { status: 'ok', redis, datastore: await firestore() }
    return { status: 'ok', redis, firestore: repository.kind === 'memory' ? 'embedded' : await firestore() }
  })
}
