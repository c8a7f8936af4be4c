import t from 'tap'
import { loadConfig } from '../../src/config.js'

t.test('VISITS_STORE=datastore serves a Datastore-mode database, with its own variables', async (t) => {
  const config = loadConfig({
    VISITS_STORE: 'datastore',
    DATASTORE_EMULATOR_HOST: '127.0.0.1:8682',
    DATASTORE_DATABASE: 'app-engine-data',
    DATASTORE_NAMESPACE: 'prod',
    GOOGLE_CLOUD_PROJECT: 'my-project'
  })
  t.same(config.datastore, { projectId: 'my-project', databaseId: 'app-engine-data', namespace: 'prod', emulatorHost: '127.0.0.1:8682', timeoutMs: 5000 })
  t.equal(config.firestore, undefined, 'not Firestore as well')
  t.same(loadConfig({ VISITS_STORE: 'datastore', K_SERVICE: 'visitme' }).datastore,
    { projectId: undefined, databaseId: '(default)', namespace: undefined, emulatorHost: undefined, timeoutMs: 5000 },
    'on Cloud Run: the project\'s (default) database, with the service account\'s credentials')
  t.equal(loadConfig({ GOOGLE_CLOUD_PROJECT: 'my-project' }).datastore, undefined, 'never chosen by auto: existing data is chosen on purpose')
})

t.test('a bad Datastore variable stops start-up naming it', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ VISITS_STORE: 'datastore', DATASTORE_EMULATOR_HOST: 'localhost' }, /DATASTORE_EMULATOR_HOST="localhost" is invalid: must be host:port/],
    [{ VISITS_STORE: 'datastore', DATASTORE_DATABASE: 'App_Data' }, /DATASTORE_DATABASE="App_Data" is invalid: must be \(default\) or a database ID/],
    [{ VISITS_STORE: 'datastore', DATASTORE_NAMESPACE: 'a/b' }, /DATASTORE_NAMESPACE="a\/b" is invalid: must be a namespace of letters/],
    [{ DATASTORE_NAMESPACE: 'prod' }, /DATASTORE_NAMESPACE is set but VISITS_STORE=auto: set VISITS_STORE=datastore/],
    [{ VISITS_STORE: 'firestore', DATASTORE_EMULATOR_HOST: '127.0.0.1:8682' }, /DATASTORE_EMULATOR_HOST is set but VISITS_STORE=firestore/],
    [{ DATASTORE_DATABASE: '(default)' }, /DATASTORE_DATABASE is set but VISITS_STORE=auto/],
    [{ VISITS_STORE: 'datastore', DATASTORE_TIMEOUT_MS: '9000' }, /DATASTORE_TIMEOUT_MS \+ 2 x REDIS_COMMAND_TIMEOUT_MS \(10000 ms\) must be below SHUTDOWN_TIMEOUT_MS/]
  ]
  for (const [env, message] of cases) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  t.ok(loadConfig({ VISITS_STORE: 'firestore', FIRESTORE_TIMEOUT_MS: '5000', DATASTORE_TIMEOUT_MS: '9000' }), 'only the budget of the store in use counts')
})
