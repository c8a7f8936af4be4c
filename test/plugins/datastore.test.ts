import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import type { Datastore, Entity } from '@google-cloud/datastore'
import { datastoreHint } from '../../src/plugins/datastore.js'
import { buildTestApp, capturingLogger, testConfig } from '../helpers/app.js'
import { FormClient } from '../helpers/form-client.js'
import { freePort } from '../helpers/ports.js'
import { redisReady, testDatastore, testDatastoreConnection, testRedis } from '../helpers/services.js'
import { waitFor } from '../helpers/wait.js'

/** What NDB wrote: numeric ids it allocated, greetings under their book's key, tasks with a name only. */
async function seedAsNdb (client: Datastore): Promise<void> {
  await client.save([
    { key: client.key(['Visit', client.int('5629499534213120')]), data: { visitor: '192.0.2.0: App Engine era browser', timestamp: new Date('2024-03-01T10:00:00.000Z') } },
    { key: client.key(['Visit', client.int('5066549580791808')]), data: { visitor: '198.51.100.0: older browser', timestamp: new Date('2024-02-01T10:00:00.000Z') } },
    { key: client.key(['Guestbook', 'default_guestbook', 'Greeting', client.int('4785074604081152')]), data: { author: 'ann', content: 'Signed on App Engine', date: new Date('2024-03-02T10:00:00.000Z') } },
    { key: client.key(['Guestbook', 'default_guestbook', 'Greeting', client.int('6192449487634432')]), data: { author: null, content: 'An anonymous greeting', date: new Date('2024-03-01T10:00:00.000Z') } },
    { key: client.key(['Guestbook', 'other', 'Greeting', client.int('5910974510923776')]), data: { author: 'bob', content: 'In another book', date: new Date('2024-03-03T10:00:00.000Z') } },
    { key: client.key(['Task', client.int('5348024557502464')]), data: { name: 'Task from the old app' } }
  ])
}

t.test('an App Engine app\'s data in Datastore mode is served as it is, and what we write reads like NDB\'s', async (t) => {
  const connection = testDatastoreConnection()
  const client = await testDatastore(t, connection)
  await seedAsNdb(client)
  const app = await buildTestApp(t, testConfig({ datastore: { ...connection, timeoutMs: 5000 } }), { redis: await redisReady(testRedis(t)) })
  const browser = new FormClient(app)

  t.same(JSON.parse((await app.inject('/health')).body), { status: 'ok', redis: 'up', datastore: 'up' }, '/health reports the store in use')

  const home = await app.inject({ url: '/', headers: { accept: 'application/json', 'user-agent': 'new browser' } })
  t.equal(home.statusCode, 200)
  t.same((home.json() as { visits: Array<{ visitor: string }> }).visits.map((v) => v.visitor),
    ['127.0.0.0: new browser', '192.0.2.0: App Engine era browser', '198.51.100.0: older browser'], 'the old visits, below the new one')
  const [visits] = await client.runQuery(client.createQuery('Visit'))
  const ours = visits.find((v: Entity) => v[client.KEY].name !== undefined)
  t.same(Object.keys(ours).sort(), ['timestamp', 'visitor'], 'a new visit has the sample\'s properties and no others')
  t.ok(ours.timestamp instanceof Date, 'timestamp is a date-time')
  t.equal(ours.visitor, '127.0.0.0: new browser')

  const book = await browser.get('/guestbook')
  t.match(book.body, /<b>ann<\/b> wrote:[\s\S]*Signed on App Engine[\s\S]*An anonymous person wrote:[\s\S]*An anonymous greeting/)
  t.notMatch(book.body, /In another book/, 'each book is its own entity group')
  t.equal((await browser.post('/sign', { content: 'Signed on Cloud Run', author: 'cat' })).statusCode, 303)
  t.match((await browser.get('/guestbook')).body, /<b>cat<\/b> wrote:[\s\S]*Signed on Cloud Run[\s\S]*Signed on App Engine/, 'newest first')
  const [greetings] = await client.runQuery(client.createQuery('Greeting').hasAncestor(client.key(['Guestbook', 'default_guestbook'])))
  const signed = greetings.find((g: Entity) => g.content === 'Signed on Cloud Run')
  t.same(signed?.[client.KEY].parent?.path, ['Guestbook', 'default_guestbook'], 'under the book\'s key, as NDB puts it')
  t.same(Object.keys(signed).sort(), ['author', 'content', 'date'])
  t.ok(signed.date instanceof Date)

  const tasks = await browser.get('/tasks')
  t.match(tasks.body, /Task from the old app/)
  t.match(tasks.body, /action="\/tasks\/5348024557502464\/delete"/, 'the numeric id, as a string')
  await browser.post('/tasks', { name: 'Task from Cloud Run' })
  const names = [...(await browser.get('/tasks')).body.matchAll(/<span class="name">([^<]*)<\/span>/g)].map((m) => m[1])
  t.same(names, ['Task from the old app', 'Task from Cloud Run'], 'the old task first: it has no creation time')
  t.equal((await browser.post('/tasks/5348024557502464/delete', {})).statusCode, 303)
  const [left] = await client.runQuery(client.createQuery('Task'))
  t.same(left.map((task: Entity) => task.name), ['Task from Cloud Run'], 'the old task is deleted by its numeric id')
})

t.test('nothing listens where DATASTORE_EMULATOR_HOST points: the log says so, /health says down, pages answer 503', async (t) => {
  const emulatorHost = `127.0.0.1:${await freePort()}`
  const { logger, lines } = capturingLogger()
  const app = await buildTestApp(t, testConfig({ datastore: { databaseId: '(default)', emulatorHost, timeoutMs: 2000 } }), { loggerInstance: logger })
  await waitFor('the start-up check', () => lines().some((l) => String(l.message).startsWith('datastore unreachable')), 5000)
  const warning = lines().find((l) => String(l.message).startsWith('datastore unreachable'))
  t.match(warning?.hint, `nothing listens at ${emulatorHost}: check DATASTORE_EMULATOR_HOST`)
  t.same((await app.inject('/health')).json(), { status: 'ok', redis: 'embedded', datastore: 'down' })
  t.equal((await app.inject('/')).statusCode, 503)
})

interface Index { kind: string, ancestor?: string | boolean, properties: Array<{ name: string, direction?: string }> }

t.test('index.yaml has the composite indexes the Datastore-mode queries need', async (t) => {
  const { indexes } = parse(readFileSync(new URL('../../index.yaml', import.meta.url), 'utf8')) as { indexes: Index[] }
  const find = (kind: string) => indexes.filter((index) => index.kind === kind)
  // A book's greetings: an ancestor query ordered by date, newest first.
  t.match(find('Greeting'), [{ ancestor: 'yes', properties: [{ name: 'date', direction: 'desc' }] }])
  // The latest visits: newest first, ties by the key, descending; the same per shard (VISITS_SHARDS > 1).
  t.same(find('Visit').map((index) => index.properties), [
    [{ name: 'timestamp', direction: 'desc' }, { name: '__key__', direction: 'desc' }],
    [{ name: 'shard' }, { name: 'timestamp', direction: 'desc' }, { name: '__key__', direction: 'desc' }]
  ])
  t.equal(indexes.length, 3, 'no index that no query uses: each costs a write per entity')
})

t.test('each Datastore mistake gets its hint, naming the variable or the role', async (t) => {
  const grpc = (code: number, message: string) => new Error('Datastore could not answer a query', { cause: Object.assign(new Error(message), { code }) })
  const cloud = { projectId: 'my-project', databaseId: 'app-data' }
  t.match(datastoreHint(grpc(14, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:8682'), { emulatorHost: '127.0.0.1:8682' }),
    /^nothing listens at 127\.0\.0\.1:8682: check DATASTORE_EMULATOR_HOST/)
  t.match(datastoreHint(Object.assign(new Error('getaddrinfo ENOTFOUND datastor'), { code: 'ENOTFOUND' }), { emulatorHost: 'datastor:8682' }),
    /host of DATASTORE_EMULATOR_HOST=datastor:8682 is unknown/)
  t.match(datastoreHint(new Error('Could not load the default credentials.'), cloud), /^no usable Google credentials: .*DATASTORE_EMULATOR_HOST/)
  t.match(datastoreHint(grpc(7, 'Missing or insufficient permissions.'), cloud), /may not use Datastore in project my-project.*roles\/datastore\.user/)
  t.match(datastoreHint(grpc(7, 'Missing or insufficient permissions.'), cloud, 'roles/datastore.viewer'), /roles\/datastore\.viewer/, 'the copy only reads')
  t.match(datastoreHint(grpc(5, 'The database app-data does not exist for project my-project'), cloud),
    /^no Datastore-mode database app-data in project my-project: check DATASTORE_DATABASE and GOOGLE_CLOUD_PROJECT/)
  t.match(datastoreHint(grpc(14, 'connect ETIMEDOUT 199.36.153.8:443'), cloud), /egress/)
  t.match(datastoreHint(grpc(8, 'Quota exceeded.'), cloud), /see err/)
})
