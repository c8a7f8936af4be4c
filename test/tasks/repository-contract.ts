import type { Test } from 'tap'
import type { TasksRepository } from '../../src/tasks/repository.js'

/** The cases every tasks repository passes; each gets a repository of its own. */
export function tasksContract (t: Test, name: string, makeRepository: (t: Test) => Promise<TasksRepository>): void {
  t.test(`${name} tasks repository contract`, async (t) => {
    t.test('an empty list', async (t) => {
      const repository = await makeRepository(t)
      t.same(await repository.all(), [])
    })

    t.test('tasks come back oldest first, as added', async (t) => {
      const repository = await makeRepository(t)
      const added = []
      for (const name of ['first', 'second <b>', 'third 🚀']) added.push(await repository.add(name))
      t.ok(added.every((task) => /^[A-Za-z0-9_-]{1,128}$/.test(task.id)), 'ids fit the delete route')
      t.equal(new Set(added.map((task) => task.id)).size, 3)
      const all = await repository.all()
      t.same(all.map((task) => task.name), ['first', 'second <b>', 'third 🚀'])
      t.same(all.map((task) => task.id), added.map((task) => task.id))
      t.same(all[0]!.createdAt, added[0]!.createdAt, 'the creation time to the millisecond')
    })

    t.test('delete answers whether there was such a task', async (t) => {
      const repository = await makeRepository(t)
      const kept = await repository.add('kept')
      const gone = await repository.add('gone')
      t.equal(await repository.delete(gone.id), true)
      t.equal(await repository.delete(gone.id), false, 'not twice')
      t.equal(await repository.delete('no-such-task'), false)
      t.same((await repository.all()).map((task) => task.id), [kept.id])
    })
  })
}
