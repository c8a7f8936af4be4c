import type { FastifyInstance } from 'fastify'

export interface HealthOptions {
  /** A Firestore answer is reused this long, so probes do not turn into load. */
  probeTtlMs?: number
  /** Kept under Cloud Run's default 1 s probe timeout. */
  probeTimeoutMs?: number
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
export default async function health (app: FastifyInstance, { probeTtlMs = 5000, probeTimeoutMs = 800 }: HealthOptions): Promise<void> {
  const { cache } = app
  const database = app.hasDecorator('database') ? app.database : undefined
  // The start-up call's answer is the first state: the database is starting, not down, until it ends.
  const probe = database === undefined ? undefined : cachedProbe(database.ping, probeTtlMs, probeTimeoutMs, database.warmUp)
  // Named after the store the data lives in: an existing Datastore-mode database, or Firestore (embedded: memory).
  const field = database?.name ?? 'firestore'
  app.get('/health', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    const redis = cache.store.kind === 'memory' ? 'embedded' : cache.available ? 'up' : 'down'
    return { status: 'ok', redis, [field]: probe === undefined ? 'embedded' : await probe() }
  })
}
