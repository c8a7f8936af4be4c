/**
 * A backend for the cache: raw strings in, raw strings out. Serialization,
 * namespaces, TTL rules and failure handling live in the Cache facade, so a
 * store only has to talk to its backend.
 */
export interface Store {
  readonly kind: 'redis' | 'memory'
  /** Whether a command can be sent now, known without a round trip. */
  readonly connected: boolean
  get (key: string): Promise<string | undefined>
  /** ttlSeconds 0 keeps the value until it is evicted or deleted. */
  set (key: string, value: string, ttlSeconds: number): Promise<void>
  delete (key: string): Promise<boolean>
}
