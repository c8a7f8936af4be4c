import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config.js'
import { VISIT_KIND } from '../../src/visits/datastore-repository.js'
import { SHARD_FIELD } from '../../src/visits/shards.js'
import { checkGcloud, gcloudTree, shellCommands } from '../deploy-checks.js'

// The index files the sharded queries need (docs/scale.md), against what the repositories ask:
// `where shard == s order by timestamp desc` (Firestore adds `__name__ desc`; Datastore mode asks it).
const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')
const collection = loadConfig({}).visits.collection

interface FirestoreIndexes {
  indexes: Array<{ collectionGroup: string, queryScope: string, fields: Array<{ fieldPath: string, order?: string }> }>
  fieldOverrides: Array<{ collectionGroup: string, fieldPath: string, indexes: unknown[] }>
}

const firestoreIndexes = JSON.parse(read('firestore.indexes.json')) as FirestoreIndexes

t.test('firestore.indexes.json: the composite index of the shards\' queries, and no single-field index on timestamp', async (t) => {
  t.same(firestoreIndexes.indexes, [{
    collectionGroup: collection,
    queryScope: 'COLLECTION',
    fields: [{ fieldPath: SHARD_FIELD, order: 'ASCENDING' }, { fieldPath: 'timestamp', order: 'DESCENDING' }]
  }], `one index, on the default collection (${collection}): equality on the shard, then the newest first`)
  t.same(firestoreIndexes.fieldOverrides.map(({ collectionGroup, fieldPath, indexes }) => ({ collectionGroup, fieldPath, indexes })), [
    { collectionGroup: collection, fieldPath: 'timestamp', indexes: [] },
    { collectionGroup: collection, fieldPath: 'visitor', indexes: [] }
  ], 'the ever-growing field and the field nothing queries are exempt from single-field indexing')
})

t.test('index.yaml: Datastore mode\'s index for one shard and for several, with the key\'s descending order', async (t) => {
  const { indexes } = parse(read('index.yaml')) as { indexes: Array<{ kind: string, ancestor?: boolean, properties: Array<{ name: string, direction?: string }> }> }
  const visits = indexes.filter((index) => index.kind === VISIT_KIND).map(({ properties }) => properties.map(({ name, direction }) => `${name} ${direction ?? 'asc'}`))
  t.same(visits, [
    ['timestamp desc', '__key__ desc'],
    [`${SHARD_FIELD} asc`, 'timestamp desc', '__key__ desc']
  ])
})

t.test('docs/scale.md\'s gcloud commands pass gcloud\'s flag parsing and create what firestore.indexes.json says', async (t) => {
  const commands = shellCommands(read('docs/scale.md'), 'Firestore past 500 writes a second').filter((words) => words[0] === 'gcloud')
  const tree = gcloudTree()
  if (tree === undefined) {
    t.fail('the Google Cloud CLI is not installed: its command tree checks the commands')
    return
  }
  for (const words of commands) t.same(checkGcloud(tree, words.slice(1)).problems, [], words.slice(0, 5).join(' '))
  const flags = (words: string[], name: string) => words.filter((w) => w.startsWith(`${name}=`)).map((w) => w.slice(name.length + 1))

  const creates = commands.filter((w) => w.slice(1, 5).join(' ') === 'firestore indexes composite create')
  t.same(creates.map((words) => ({
    collectionGroup: flags(words, '--collection-group')[0],
    queryScope: flags(words, '--query-scope')[0]?.toUpperCase(),
    fields: flags(words, '--field-config').map((config) => {
      const parts = Object.fromEntries(config.split(',').map((kv) => kv.split('=') as [string, string]))
      return { fieldPath: parts['field-path'], order: parts.order?.toUpperCase() }
    })
  })), firestoreIndexes.indexes, 'the composite index')

  const exemptions = commands.filter((w) => w.slice(1, 5).join(' ') === 'firestore indexes fields update' && w.includes('--disable-indexes'))
  t.same(exemptions.map((words) => ({ collectionGroup: flags(words, '--collection-group')[0], fieldPath: words[5], indexes: [] })),
    firestoreIndexes.fieldOverrides, 'the exemptions')
})
