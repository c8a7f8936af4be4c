import type { Test } from 'tap'
import type { VisitsRepository } from '../../src/visits/repository.js'
import { allShards, shardOf } from '../../src/visits/shards.js'

/** The cases every visits repository passes, at the shard count it was made with; each gets a repository of its own. */
export function repositoryContract (t: Test, name: string, makeRepository: (t: Test) => Promise<VisitsRepository>, { shards = 1 }: { shards?: number } = {}): void {
  t.test(`${name} repository contract${shards === 1 ? '' : `, ${shards} shards`}`, async (t) => {
    t.test('an empty repository has no visits', async (t) => {
      const repository = await makeRepository(t)
      t.same(await repository.latest(10), [])
      await t.resolves(repository.ping())
    })

    t.test('latest returns the newest first, up to the limit', async (t) => {
      const repository = await makeRepository(t)
      const base = Date.parse('2026-11-21T12:00:00.000Z')
      // Added out of order: the order comes from the timestamps.
      for (const minute of [3, 1, 4, 2, 5]) {
        await repository.add(`id-${minute}`, { visitor: `visitor ${minute}`, timestamp: new Date(base + minute * 60_000) })
      }
      const all = await repository.latest(10)
      t.same(all.map((v) => v.visitor), ['visitor 5', 'visitor 4', 'visitor 3', 'visitor 2', 'visitor 1'])
      t.same(all[0]!.timestamp, new Date(base + 5 * 60_000), 'timestamps keep millisecond precision')
      t.ok(all[0]!.timestamp instanceof Date)
      t.same((await repository.latest(2)).map((v) => v.visitor), ['visitor 5', 'visitor 4'])
    })

    t.test('usage counts the writes, the queries and the documents they read', async (t) => {
      const repository = await makeRepository(t)
      const start = { ...repository.usage }
      await repository.add('u-1', { visitor: 'a', timestamp: new Date('2026-11-21T12:00:00.000Z') })
      await repository.add('u-2', { visitor: 'b', timestamp: new Date('2026-11-21T12:00:01.000Z') })
      await repository.latest(10)
      await repository.latest(1)
      // A read is one query per shard, each billed for at least one document.
      const inShard = (shard: number) => ['u-1', 'u-2'].filter((id) => shardOf(id, shards) === shard).length
      const documentsRead = allShards(shards).reduce((sum, shard) => sum + Math.max(1, inShard(shard)) + 1, 0)
      t.same({
        writes: repository.usage.writes - start.writes,
        queries: repository.usage.queries - start.queries,
        documentsRead: repository.usage.documentsRead - start.documentsRead
      }, { writes: 2, queries: 2 * shards, documentsRead })
    })

    t.test('visitor strings are stored as they are', async (t) => {
      const repository = await makeRepository(t)
      const visitor = '2001:db8:: <script>alert("é")</script> 🚀'
      await repository.add('unicode', { visitor, timestamp: new Date() })
      t.equal((await repository.latest(1))[0]!.visitor, visitor)
    })

    t.test('adding an id again stores nothing, succeeds, and answers the visit as first stored', async (t) => {
      const repository = await makeRepository(t)
      const first = { visitor: 'A', timestamp: new Date('2026-11-21T12:00:00.000Z') }
      t.same(await repository.add('same-id', first), { id: 'same-id', ...first })
      t.same(await repository.add('same-id', { visitor: 'A', timestamp: new Date('2026-11-21T12:00:05.000Z') }), { id: 'same-id', ...first },
        'the stored timestamp, not the one of the second write')
      const raced = await Promise.all([repository.add('raced', { visitor: 'B', timestamp: new Date('2026-11-21T12:01:00.000Z') }),
        repository.add('raced', { visitor: 'B', timestamp: new Date('2026-11-21T12:01:00.999Z') })])
      t.equal(raced[0].timestamp.getTime(), raced[1].timestamp.getTime(), 'two racing writes of one id both answer the one stored')
      t.same(await repository.latest(10), [raced[0], { id: 'same-id', ...first }])
    })

    t.test('find answers the visit stored under an id, or nothing', async (t) => {
      const repository = await makeRepository(t)
      const visit = { visitor: 'A', timestamp: new Date('2026-11-21T12:00:00.123Z') }
      await repository.add('found', visit)
      t.same(await repository.find('found'), { id: 'found', ...visit })
      t.equal(await repository.find('absent'), undefined)
    })

    t.test('visits at the same millisecond: the greater id first, as Firestore orders a descending query', async (t) => {
      const repository = await makeRepository(t)
      const at = new Date('2026-11-21T12:00:00.000Z')
      for (const id of ['b', 'c', 'a']) await repository.add(id, { visitor: id, timestamp: at })
      t.same((await repository.latest(10)).map((v) => v.id), ['c', 'b', 'a'])
    })

    t.test('many visits on few timestamps: latest(n) is the n newest, ties by the greater id, at any n', async (t) => {
      const repository = await makeRepository(t)
      const base = Date.parse('2026-11-21T12:00:00.000Z')
      const ids = Array.from({ length: 30 }, (_, i) => `v${(i * 7919 % 1000).toString(16)}`)
      // Five timestamps for thirty visits, added in no order: most of the order is the ids'.
      await Promise.all(ids.map(async (id, i) => await repository.add(id, { visitor: id, timestamp: new Date(base + (i * 3 % 5)) })))
      const expected = ids.map((id, i) => ({ id, ms: base + (i * 3 % 5) }))
        .sort((a, b) => b.ms - a.ms || (a.id < b.id ? 1 : -1)).map(({ id }) => id)
      for (const n of [1, 7, 30, 40]) t.same((await repository.latest(n)).map((v) => v.id), expected.slice(0, n), `latest(${n})`)
    })
  })
}
