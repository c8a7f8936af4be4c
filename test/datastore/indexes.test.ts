import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'

interface Index { kind: string, ancestor?: string | boolean, properties: Array<{ name: string, direction?: string }> }

t.test('index.yaml has the composite indexes the Datastore-mode queries need', async (t) => {
  const { indexes } = parse(readFileSync(new URL('../../index.yaml', import.meta.url), 'utf8')) as { indexes: Index[] }
  const find = (kind: string) => indexes.find((index) => index.kind === kind)
  // A book's greetings: an ancestor query ordered by date, newest first.
  t.match(find('Greeting'), { ancestor: 'yes', properties: [{ name: 'date', direction: 'desc' }] })
  // The latest visits: newest first, ties by the key, descending.
  t.same(find('Visit')?.properties, [{ name: 'timestamp', direction: 'desc' }, { name: '__key__', direction: 'desc' }])
  t.equal(indexes.length, 2, 'no index that no query uses: each costs a write per entity')
})
