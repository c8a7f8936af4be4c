import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t from 'tap'
import { ConfigError, loadConfig, plainlyValid, validated, variables } from '../src/config.js'

t.test('defaults run the embedded service', async (t) => {
  const config = loadConfig({})
  t.equal(config.port, 8080)
  t.equal(config.host, '0.0.0.0')
  t.equal(config.cacheNamespace, 'visitme')
  t.equal(config.redis, undefined, 'no REDISHOST: in-process cache')
  t.equal(config.firestore, undefined, 'no emulator, no project: in-memory visits')
  t.same(config.visits, { collection: 'visits', limit: 10, shards: 1, cacheTtlSeconds: 3600, ipMode: 'truncated' }, 'one shard: the App Engine sample\'s documents and query')
  t.equal(config.trustProxyHops, 0, 'off Cloud Run no forwarded header is trusted')
  t.ok(config.shutdownTimeoutMs < 10_000, 'shutdown fits Cloud Run\'s 10 s')
})

t.test('Redis and Firestore come from the environment', async (t) => {
  const config = loadConfig({
    REDISHOST: '10.0.0.3',
    REDISPORT: '6378',
    REDIS_COMMAND_TIMEOUT_MS: '250',
    FIRESTORE_EMULATOR_HOST: '127.0.0.1:8681',
    VISITS_COLLECTION: 'visits-staging',
    VISITS_LIMIT: '20',
    VISITS_SHARDS: '20',
    VISITS_CACHE_TTL: '60',
    VISITOR_IP: 'full',
    PORT: '9000'
  })
  t.same(config.redis, { host: '10.0.0.3', port: 6378, commandTimeoutMs: 250, connectTimeoutMs: 2000, cluster: false })
  t.same(config.firestore, { projectId: undefined, databaseId: '(default)', emulatorHost: '127.0.0.1:8681', timeoutMs: 5000 })
  t.same(config.visits, { collection: 'visits-staging', limit: 20, shards: 20, cacheTtlSeconds: 60, ipMode: 'full' })
  t.equal(config.port, 9000)
})

t.test('a cluster, a read replica and the write budget are one variable away', async (t) => {
  t.equal(loadConfig({ REDISHOST: '10.0.0.9', REDIS_CLUSTER: 'true' }).redis?.cluster, true)
  t.same(loadConfig({ REDISHOST: '10.0.0.3', REDIS_READ_HOST: '10.0.0.4' }).redis?.read, { host: '10.0.0.4', port: 6379 },
    'the read endpoint takes the primary\'s port unless told')
  t.same(loadConfig({ REDISHOST: '10.0.0.3', REDISPORT: '6378', REDIS_READ_HOST: '10.0.0.4' }).redis?.read, { host: '10.0.0.4', port: 6378 })
  t.same(loadConfig({ REDISHOST: '10.0.0.3', REDIS_READ_HOST: '10.0.0.4', REDIS_READ_PORT: '6390' }).redis?.read, { host: '10.0.0.4', port: 6390 })
  t.equal(loadConfig({}).rateLimitWrites, 60, 'writes are limited by default')
  t.equal(loadConfig({ RATE_LIMIT_WRITES: '0' }).rateLimitWrites, 0)
})

t.test('on Cloud Run Firestore is used and one proxy hop is trusted', async (t) => {
  const config = loadConfig({ K_SERVICE: 'visitme' })
  t.equal(config.onCloudRun, true)
  t.equal(config.trustProxyHops, 1)
  t.ok(config.firestore, 'Firestore, with the project from the metadata server')
  t.equal(loadConfig({ K_SERVICE: 'visitme', TRUST_PROXY_HOPS: '2' }).trustProxyHops, 2)
  t.equal(loadConfig({ K_SERVICE: 'visitme', VISITS_STORE: 'memory' }).firestore, undefined)
  t.ok(loadConfig({ GOOGLE_CLOUD_PROJECT: 'my-project' }).firestore, 'a project selects Firestore')
})

t.test('empty variables count as unset', async (t) => {
  const config = loadConfig({ REDISHOST: '', REDISPORT: ' ', PORT: '' })
  t.equal(config.redis, undefined)
  t.equal(config.port, 8080)
})

t.test('a bad value stops start-up with a message naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ REDISHOST: 'r', REDISPORT: 'abc' }, /REDISPORT="abc" is invalid: must be integer/],
    [{ REDISPORT: '70000' }, /REDISPORT="70000" is invalid: must be <= 65535/],
    [{ PORT: '-1' }, /PORT="-1" is invalid/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud" is invalid: must be one of fatal, error, warn, info, debug, trace, silent/],
    [{ VISITS_STORE: 'mongo' }, /VISITS_STORE="mongo" is invalid: must be one of auto, firestore, datastore, memory/],
    [{ VISITOR_IP: 'half' }, /VISITOR_IP="half" is invalid: must be one of truncated, full/],
    [{ FIRESTORE_EMULATOR_HOST: 'localhost' }, /FIRESTORE_EMULATOR_HOST="localhost" is invalid: must be host:port/],
    [{ VISITS_COLLECTION: 'a/b' }, /VISITS_COLLECTION="a\/b" is invalid: must be a collection ID/],
    [{ VISITS_LIMIT: '0' }, /VISITS_LIMIT="0" is invalid: must be >= 1/],
    [{ VISITS_SHARDS: '0' }, /VISITS_SHARDS="0" is invalid: must be >= 1/],
    [{ VISITS_SHARDS: '101' }, /VISITS_SHARDS="101" is invalid: must be <= 100/],
    [{ VISITS_SHARDS: 'many' }, /VISITS_SHARDS="many" is invalid: must be integer/],
    [{ VISITS_CACHE_TTL: '1.5' }, /VISITS_CACHE_TTL="1.5" is invalid: must be integer/],
    [{ SHUTDOWN_TIMEOUT_MS: '20000' }, /SHUTDOWN_TIMEOUT_MS="20000" is invalid: must be <= 9500/],
    [{ REDISHOST: 'redis host' }, /REDISHOST="redis host" is invalid: must be a host name or IP address/],
    [{ CACHE_NAMESPACE: 'a:b' }, /CACHE_NAMESPACE="a:b" is invalid: must be letters, digits/],
    [{ SESSION_SECRET: 'hunter2' }, /^Invalid configuration: SESSION_SECRET \(7 characters\) is invalid: must be at least 32 characters$/],
    [{ ADMIN_TOKEN: 'hunter2' }, /^Invalid configuration: ADMIN_TOKEN \(7 characters\) is invalid: must be at least 32 characters \(e\.g\. openssl rand -hex 32\)$/],
    [{ ADMIN_IAP_AUDIENCE: 'my-service' }, /^Invalid configuration: ADMIN_IAP_AUDIENCE="my-service" is invalid: must be IAP's audience: \/projects\/NUMBER\/locations\/REGION\/services\/SERVICE \(Cloud Run's own IAP\)/],
    [{ REDISHOST: 'r', REDIS_CLUSTER: 'yes' }, /REDIS_CLUSTER="yes" is invalid: must be true or false \(or 1 or 0\)/],
    [{ REDISHOST: 'r', REDIS_CLUSTER: 'true', REDIS_READ_HOST: 'x' }, /REDIS_READ_HOST is for a standalone instance/],
    [{ REDIS_CLUSTER: 'true' }, /REDIS_CLUSTER needs REDISHOST/],
    [{ REDIS_READ_HOST: 'x' }, /REDIS_READ_HOST needs REDISHOST/],
    [{ RATE_LIMIT_WRITES: '-1' }, /RATE_LIMIT_WRITES="-1" is invalid: must be >= 0/]
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  }
  t.throws(() => loadConfig({ FIRESTORE_TIMEOUT_MS: '9000' }), {
    name: 'ConfigError',
    message: /FIRESTORE_TIMEOUT_MS \+ 2 x REDIS_COMMAND_TIMEOUT_MS \(10000 ms\) must be below SHUTDOWN_TIMEOUT_MS \(8000 ms\)/
  }, 'a request must be able to finish within the shutdown window')
  t.throws(() => loadConfig({ FIRESTORE_TIMEOUT_MS: '6600' }), {
    name: 'ConfigError',
    message: /\(7600 ms\) must be below SHUTDOWN_TIMEOUT_MS \(8000 ms\) less the 500 ms in which shutdown still accepts connections/
  }, 'including one taken on at the end of the accept window')
  t.equal(loadConfig({ FIRESTORE_TIMEOUT_MS: '6400' }).drain?.acceptMs, 500, '7400 ms + 500 ms fits')
  const both = t.throws(() => loadConfig({ REDISPORT: 'abc', PORT: 'x' })) as ConfigError
  t.match(both.message, /PORT="x"/)
  t.match(both.message, /REDISPORT="abc"/, 'every bad variable is named at once')
})

t.test('a host with a port is refused, naming the port variable to use', async (t) => {
  t.throws(() => loadConfig({ REDISHOST: '127.0.0.1:6379' }), {
    name: 'ConfigError',
    message: 'Invalid configuration: REDISHOST="127.0.0.1:6379" is invalid: it takes the host alone; the port goes in REDISPORT (REDISPORT=6379)'
  })
  t.throws(() => loadConfig({ REDISHOST: 'redis.internal:6380' }), { message: /REDISHOST="redis\.internal:6380" .* REDISPORT \(REDISPORT=6380\)/ })
  t.throws(() => loadConfig({ REDISHOST: '10.0.0.3', REDIS_READ_HOST: '10.0.0.4:6379' }), { message: /REDIS_READ_HOST="10\.0\.0\.4:6379" .* REDIS_READ_PORT/ })
  t.equal(loadConfig({ REDISHOST: '::1' }).redis?.host, '::1', 'an IPv6 address is a host')
  t.equal(loadConfig({ REDISHOST: 'fd00::3' }).redis?.host, 'fd00::3')
})

t.test('booleans: true/false or 1/0, any case, trimmed', async (t) => {
  for (const value of ['true', 'TRUE', 'True', '1', ' true ']) {
    t.equal(loadConfig({ REDISHOST: 'r', REDIS_CLUSTER: value }).redis?.cluster, true, JSON.stringify(value))
  }
  for (const value of ['false', 'FALSE', 'False', '0', ' 0 ']) {
    t.equal(loadConfig({ REDISHOST: 'r', REDIS_CLUSTER: value }).redis?.cluster, false, JSON.stringify(value))
  }
  for (const value of ['yes', 'On', '2', 'tru']) {
    t.throws(() => loadConfig({ REDISHOST: 'r', REDIS_CLUSTER: value }), { message: `Invalid configuration: REDIS_CLUSTER=${JSON.stringify(value)} is invalid: must be true or false (or 1 or 0)` })
  }
})

t.test('values are trimmed', async (t) => {
  const config = loadConfig({ REDISHOST: ' 10.0.0.3 ', REDISPORT: '6380 ', VISITOR_IP: ' full' })
  t.same([config.redis?.host, config.redis?.port, config.visits.ipMode], ['10.0.0.3', 6380, 'full'])
})

t.test('log lines name the Cloud Run service and revision', async (t) => {
  t.same(loadConfig({}).service, { name: 'visitme', version: undefined })
  t.same(loadConfig({ K_SERVICE: 'visitme-staging', K_REVISION: 'visitme-staging-00007-xyz' }).service, { name: 'visitme-staging', version: 'visitme-staging-00007-xyz' })
})

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

t.test('the cache console: off by default, on with a token, IAP\'s audience, or both', async (t) => {
  t.equal(loadConfig({}).admin, undefined)
  const token = 'x'.repeat(32)
  t.same(loadConfig({ ADMIN_TOKEN: token }).admin, { token, iapAudience: undefined })
  for (const audience of ['/projects/123/locations/europe-west1/services/visitme-admin', '/projects/123/global/backendServices/456', '/projects/123/apps/my-project']) {
    t.same(loadConfig({ ADMIN_IAP_AUDIENCE: audience }).admin, { token: undefined, iapAudience: audience })
  }
  t.same(loadConfig({ ADMIN_TOKEN: token, ADMIN_IAP_AUDIENCE: '/projects/1/apps/p' }).admin, { token, iapAudience: '/projects/1/apps/p' })
})

t.test('the start-up shortcut accepts only what env-schema accepts, and reads it as env-schema does', async (t) => {
  // Per variable: values of every shape the schema tells apart (empty means unset).
  const candidates = ['', '0', '1', '-1', '8080', '65536', '1.5', '1e3', '08', 'true', 'false', 'yes', 'info', 'loud', 'truncated', 'full',
    'auto', 'datastore', '(default)', 'visits', 'a/b', '10.0.0.3', 'redis host', '127.0.0.1:8681', 'localhost', 'demo-bench', 'App_Data',
    'x'.repeat(32), 'x'.repeat(65), 'é', '9500', '60000', '1000000']
  let shortcuts = 0
  fc.assert(fc.property(fc.dictionary(fc.constantFrom(...variables), fc.constantFrom(...candidates)), (env) => {
    const raw = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''))
    const fast = plainlyValid(raw)
    if (fast === undefined) return true
    shortcuts++
    let expected: unknown
    try { expected = validated(raw) } catch { expected = 'refused' }
    return isDeepStrictEqual({ ...fast }, expected)
  }), { numRuns: 2000 })
  t.ok(shortcuts > 100, `the shortcut answered ${shortcuts} of 2000 environments`)
  t.same(plainlyValid({}), validated({}), 'the defaults')
})
