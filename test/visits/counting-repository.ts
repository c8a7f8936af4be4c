import type { CallOptions, VisitsRepository } from '../../src/visits/repository.js'
import type { StoredVisit, Visit } from '../../src/visits/visit.js'

/** A real repository that counts the calls made to it. */
export class CountingRepository implements VisitsRepository {
  readonly calls = { add: 0, latest: 0 }
  constructor (readonly inner: VisitsRepository) {}

  get kind (): VisitsRepository['kind'] {
    return this.inner.kind
  }

  get usage (): VisitsRepository['usage'] {
    return this.inner.usage
  }

  async add (id: string, visit: Visit, options?: CallOptions): Promise<StoredVisit> {
    this.calls.add++
    return await this.inner.add(id, visit, options)
  }

  async find (id: string, options?: CallOptions): Promise<StoredVisit | undefined> {
    return await this.inner.find(id, options)
  }

  async latest (limit: number, options?: CallOptions): Promise<StoredVisit[]> {
    this.calls.latest++
    return await this.inner.latest(limit, options)
  }

  async ping (): Promise<void> {
    await this.inner.ping()
  }
}
