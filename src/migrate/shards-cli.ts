/**
 * npm run migrate:shards -- [--from N] [--latest 1000]
 *
 * The one-off step of a change of VISITS_SHARDS (docs/scale.md, "Firestore past 500 writes a
 * second"): the newest visits, read as the old count (--from, default 1) stored them, get the
 * shard of the new one (VISITS_SHARDS). Only the newest need it: a visit older than VISITS_LIMIT
 * sharded ones never shows again. The database is the one the service serves, from its own
 * variables (VISITS_STORE, FIRESTORE_*, DATASTORE_*, VISITS_COLLECTION, VISITS_SHARDS).
 * Run it once no instance of the old count is left; from one shard, before `timestamp` loses
 * its single-field index (the read without a shard needs it).
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../config.js'
import { closeDatastore, createDatastore, describeDatastore } from '../plugins/datastore.js'
import { createFirestore, describeFirestore } from '../plugins/firestore.js'
import { DatastoreVisitsRepository } from '../visits/datastore-repository.js'
import { FirestoreVisitsRepository } from '../visits/firestore-repository.js'

const USAGE = 'usage: npm run migrate:shards -- [--from 1-100] [--latest 1-10000]'

function count (name: string, value: string, max: number): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ConfigError(`--${name} must be 1-${max}, not ${value}\n${USAGE}`)
  return n
}

async function main (argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let close = async (): Promise<unknown> => undefined
  try {
    const { values } = parseArgs({ args: argv, options: { from: { type: 'string', default: '1' }, latest: { type: 'string', default: '1000' } } })
    const from = count('from', values.from, 100)
    const latest = count('latest', values.latest, 10_000)
    const config = loadConfig(env)
    const to = config.visits.shards
    if (from === to) throw new ConfigError(`--from ${from} is VISITS_SHARDS already: nothing to move`)
    let repositories: Array<FirestoreVisitsRepository | DatastoreVisitsRepository>
    let where: string
    if (config.datastore !== undefined) {
      const client = await createDatastore(config.datastore)
      close = async () => { await closeDatastore(client) }
      repositories = [from, to].map((shards) => new DatastoreVisitsRepository(client, { timeoutMs: 60_000, shards }))
      where = describeDatastore(config.datastore)
    } else if (config.firestore !== undefined) {
      const db = await createFirestore(config.firestore)
      close = async () => { await db.terminate() }
      repositories = [from, to].map((shards) => new FirestoreVisitsRepository(db, { collection: config.visits.collection, timeoutMs: 60_000, shards }))
      where = `${describeFirestore(config.firestore)}, collection ${config.visits.collection}`
    } else {
      throw new ConfigError('no database: set VISITS_STORE (firestore or datastore) and its variables as the service has them')
    }
    const visits = await repositories[0]!.latest(latest)
    const written = await repositories[1]!.placeInShards(visits)
    process.stdout.write(`${where}: the ${written} newest visits, read at ${from} shard(s), now carry their shard of ${to}\n`)
    return 0
  } catch (error) {
    process.stderr.write(`migrate:shards: ${(error as Error).message}\n`)
    return error instanceof ConfigError || (error as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 2 : 1
  } finally {
    await close()
  }
}

process.exitCode = await main(process.argv.slice(2), process.env)
