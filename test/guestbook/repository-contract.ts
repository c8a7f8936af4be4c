import type { Test } from 'tap'
import type { GreetingsRepository } from '../../src/guestbook/repository.js'

/** The cases every greetings repository passes; each gets a repository of its own. */
export function greetingsContract (t: Test, name: string, makeRepository: (t: Test) => Promise<GreetingsRepository>): void {
  t.test(`${name} greetings repository contract`, async (t) => {
    t.test('a book nobody signed has no greetings', async (t) => {
      const repository = await makeRepository(t)
      t.same(await repository.latest('default_guestbook', 10), [])
    })

    t.test('newest first, up to the limit, each book apart', async (t) => {
      const repository = await makeRepository(t)
      const base = Date.parse('2026-11-21T12:00:00.000Z')
      for (const minute of [1, 2, 3]) {
        await repository.add('book a', { author: `author ${minute}`, content: `greeting ${minute}`, date: new Date(base + minute * 60_000) })
      }
      await repository.add('book b', { content: 'elsewhere', date: new Date(base) })
      const latest = await repository.latest('book a', 2)
      t.same(latest.map((g) => g.content), ['greeting 3', 'greeting 2'])
      t.same(latest[0], { author: 'author 3', content: 'greeting 3', date: new Date(base + 3 * 60_000) }, 'fields and the date to the millisecond')
      t.ok(latest[0]!.date instanceof Date)
      t.same(await repository.latest('book b', 10), [{ content: 'elsewhere', date: new Date(base) }], 'an anonymous greeting has no author')
    })

    t.test('text is stored as it is, however long', async (t) => {
      const repository = await makeRepository(t)
      const content = `<script>alert("é")</script> 🚀 ${'x'.repeat(2000)}`
      await repository.add('käse & <b>', { author: 'Zoë', content, date: new Date() })
      t.same((await repository.latest('käse & <b>', 1)).map((g) => [g.author, g.content]), [['Zoë', content]])
    })
  })
}
