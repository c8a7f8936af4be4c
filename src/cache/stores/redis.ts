import type { Redis } from 'ioredis'
import type { Store } from './store.js'

/** A store on an ioredis client; the client's own settings bound every command. */
export class RedisStore implements Store {
  readonly kind = 'redis'

  constructor (readonly client: Redis) {}

  get connected (): boolean {
    return this.client.status === 'ready'
  }

  async get (key: string): Promise<string | undefined> {
    return (await this.client.get(key)) ?? undefined
  }

  async set (key: string, value: string, ttlSeconds: number): Promise<void> {
    if (ttlSeconds > 0) await this.client.set(key, value, 'EX', ttlSeconds)
    else await this.client.set(key, value)
  }

  async delete (key: string): Promise<boolean> {
    return (await this.client.del(key)) > 0
  }
}
