/**
 * npm run migrate -- [--dry-run] [--restart] [--kinds Visit,Greeting,Task] [--page-size 300] [--checkpoint FILE]
 *
 * Copies an App Engine app's Visit, Greeting and Task entities from Firestore in Datastore mode
 * into the Firestore (native mode) collections this service reads. Source and target come from
 * the service's own variables: GOOGLE_CLOUD_PROJECT, DATASTORE_DATABASE, DATASTORE_NAMESPACE,
 * DATASTORE_EMULATOR_HOST for the source; FIRESTORE_DATABASE, FIRESTORE_EMULATOR_HOST and
 * VISITS_COLLECTION for the target.
 */
import { parseArgs } from 'node:util'
import { GUESTBOOKS_COLLECTION } from '../guestbook/firestore-repository.js'
import { ConfigError, loadConfig } from '../config.js'
import { closeDatastore, createDatastore, datastoreHint, describeDatastore, type DatastoreConnection } from '../plugins/datastore.js'
import { connectionFails, createFirestore, describeFirestore, firestoreHint, type FirestoreConnection } from '../plugins/firestore.js'
import { TASKS_COLLECTION } from '../tasks/firestore-repository.js'
import { Checkpoint, CheckpointMismatchError } from './checkpoint.js'
import { copyToFirestore, KINDS, type Collections, type Kind, type KindCounts } from './copy.js'

/** A set-up mistake, told in a line with what to check; nothing was copied. */
class SetupError extends Error {}
/** The command line itself is wrong: told with the usage. */
class UsageError extends SetupError {}

/** How long each side has to answer its first call before the copy gives up with a hint. */
const FIRST_ANSWER_MS = 20_000

function usage (): string {
  return 'usage: npm run migrate -- [--dry-run] [--restart] [--kinds Visit,Greeting,Task] [--page-size 1-1000] [--checkpoint FILE]'
}

const OPTIONS = {
  'dry-run': { type: 'boolean', default: false },
  restart: { type: 'boolean', default: false },
  kinds: { type: 'string', default: KINDS.join(',') },
  'page-size': { type: 'string', default: '300' },
  checkpoint: { type: 'string', default: 'migrate-checkpoint.json' },
  help: { type: 'boolean', default: false }
} as const

function options (argv: string[]) {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const { values } = parsed
  const kinds = values.kinds.split(',').map((k) => k.trim()).filter((k) => k !== '')
  const unknown = kinds.find((k) => !(KINDS as readonly string[]).includes(k))
  if (unknown !== undefined || kinds.length === 0) throw new UsageError(`--kinds: ${unknown ?? '(none)'} is not one of ${KINDS.join(', ')}`)
  const pageSize = Number(values['page-size'])
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw new UsageError(`--page-size must be 1-1000, not ${values['page-size']}`)
  return { dryRun: values['dry-run'], restart: values.restart, kinds: kinds as Kind[], pageSize, checkpoint: values.checkpoint, help: values.help }
}

/** Both sides from the service's variables, validated as the service validates them. */
function sides (env: NodeJS.ProcessEnv): { source: DatastoreConnection, target: FirestoreConnection, collections: Collections } {
  const source = loadConfig({ ...env, VISITS_STORE: 'datastore' }).datastore!
  const withoutSource = Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('DATASTORE_')))
  const serving = loadConfig({ ...withoutSource, VISITS_STORE: 'firestore' })
  const target = serving.firestore!
  if (source.emulatorHost === undefined && target.emulatorHost === undefined && source.databaseId === target.databaseId) {
    throw new SetupError(`DATASTORE_DATABASE and FIRESTORE_DATABASE both name ${source.databaseId}: a database is either in Datastore ` +
      'mode or in native mode. Create a native-mode database (gcloud firestore databases create --database=NAME ' +
      '--type=firestore-native --location=LOCATION) and set FIRESTORE_DATABASE to it')
  }
  if (source.emulatorHost !== undefined && source.emulatorHost === target.emulatorHost) {
    throw new SetupError(`DATASTORE_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST both name ${source.emulatorHost}: an emulator runs ` +
      'in one mode; start one with --database-mode=datastore-mode for the source and one without it for the target')
  }
  return { source, target, collections: { visits: serving.visits.collection, visitShards: serving.visits.shards, guestbooks: GUESTBOOKS_COLLECTION, tasks: TASKS_COLLECTION } }
}

/** The first call of a side, bounded, and its failure told with what to check. */
async function firstAnswer (side: string, call: () => Promise<unknown>, emulatorHost: string | undefined, hint: (err: unknown) => string): Promise<void> {
  const refused = emulatorHost === undefined ? undefined : await connectionFails(emulatorHost, 1000)
  let timer: NodeJS.Timeout | undefined
  try {
    if (refused !== undefined) throw refused
    await Promise.race([call(), new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${FIRST_ANSWER_MS / 1000} s`)), FIRST_ANSWER_MS)
    })])
  } catch (err) {
    throw new SetupError(`cannot use ${side}: ${(err as Error).message}\n  hint: ${hint(err)}`)
  } finally {
    clearTimeout(timer)
  }
}

/** A line per kind that redraws itself in a terminal, and a line per page in a log. */
function progressReporter (stream: NodeJS.WriteStream, dryRun: boolean) {
  const tty = stream.isTTY === true
  let open = false
  return {
    update (kind: Kind, counts: Readonly<KindCounts>, { read, total, done }: { read: number, total?: number, done: boolean }) {
      const width = 30
      const share = total === undefined || total === 0 ? (done ? 1 : 0) : Math.min(1, read / total)
      const bar = `[${'#'.repeat(Math.round(share * width)).padEnd(width, '-')}]`
      const line = `${kind.padEnd(8)} ${bar} ${String(read).padStart(7)}/${total ?? '?'}  ` +
        `${dryRun ? 'would write' : 'written'} ${counts.written}, skipped ${counts.skipped}, failed ${counts.failed}`
      if (tty) {
        stream.write(`\r\u001b[2K${line}${done ? '\n' : ''}`)
        open = !done
      } else {
        stream.write(`${line}\n`)
      }
    },
    /** Ends a line left open (an interruption, a failure) before anything else is written. */
    end () {
      if (open) stream.write('\n')
      open = false
    }
  }
}

function summary (kinds: Partial<Record<Kind, KindCounts>>, dryRun: boolean): string {
  const rows = Object.entries(kinds) as Array<[string, KindCounts]>
  const total = rows.reduce((sum, [, c]) => ({ read: sum.read + c.read, written: sum.written + c.written, skipped: sum.skipped + c.skipped, failed: sum.failed + c.failed }),
    { read: 0, written: 0, skipped: 0, failed: 0 })
  const header = ['kind', 'read', dryRun ? 'would write' : 'written', 'skipped', 'failed']
  const lines = [...rows, ['total', total] as [string, KindCounts]].map(([kind, c]) => [kind, c.read, c.written, c.skipped, c.failed].map(String))
  return [header, ...lines].map((cells) => cells.map((cell, i) => i === 0 ? cell.padEnd(8) : cell.padStart(header[i]!.length + 2)).join('')).join('\n')
}

/** Runs the command; answers the process's exit code. */
async function main (argv: string[], env: NodeJS.ProcessEnv, out = process.stdout, err = process.stderr): Promise<number> {
  let closeAll = async () => {}
  const controller = new AbortController()
  let signals = 0
  const onSignal = () => {
    // The second one does not wait for the page in progress.
    if (++signals > 1) process.exit(130)
    err.write('\nstopping after the page in progress (its checkpoint is saved); press Ctrl-C again to stop at once\n')
    controller.abort()
  }
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal)
  try {
    const args = options(argv)
    if (args.help) {
      out.write(`${usage()}\n`)
      return 0
    }
    const { source, target, collections } = sides(env)
    const copy = `${describeDatastore(source)} -> ${describeFirestore(target)} (${[collections.visits, collections.guestbooks, collections.tasks].join(', ')})`
    const checkpoint = args.dryRun ? Checkpoint.fresh(copy) : await Checkpoint.open(args.checkpoint, copy, { restart: args.restart })
    const [datastore, firestore] = await Promise.all([createDatastore(source), createFirestore(target)])
    closeAll = async () => { await Promise.all([closeDatastore(datastore), firestore.terminate()]) }

    await firstAnswer(`the source, ${describeDatastore(source)}`, async () => await datastore.runQuery(datastore.createQuery(KINDS[0]).select('__key__').limit(1)),
      source.emulatorHost, (e) => datastoreHint(e, source, 'roles/datastore.viewer'))
    await firstAnswer(`the target, ${describeFirestore(target)}`, async () => await firestore.collection(collections.visits).select().limit(1).get(),
      target.emulatorHost, (e) => firestoreHint(e, target))

    out.write(`Copying ${args.kinds.join(', ')} from ${describeDatastore(source)}\n  into ${describeFirestore(target)}, ` +
      `collections ${[collections.visits, collections.guestbooks, collections.tasks].join(', ')}${args.dryRun ? ' (dry run: nothing is written)' : ''}\n`)
    const progress = progressReporter(err, args.dryRun)
    const problems: string[] = []
    const result = await copyToFirestore({
      source: datastore,
      target: firestore,
      collections,
      kinds: args.kinds,
      checkpoint,
      pageSize: args.pageSize,
      dryRun: args.dryRun,
      signal: controller.signal,
      onProgress: (kind, counts, position) => progress.update(kind, counts, position),
      onProblem: (problem) => problems.push(problem)
    })
    progress.end()
    if (problems.length > 0) {
      err.write(`not copied:\n${problems.slice(0, 20).map((p) => `  ${p}`).join('\n')}\n`)
      if (problems.length > 20) err.write(`  ... and ${problems.length - 20} more\n`)
    }
    out.write(`${summary(result.kinds, args.dryRun)}\n`)
    if (result.interrupted) {
      out.write(`interrupted: run the same command again to go on from the checkpoint (${args.checkpoint})\n`)
      return 130
    }
    if (result.incomplete) {
      out.write('some writes failed (see above): run the same command again to retry them; what is copied is skipped\n')
      return 1
    }
    return problems.length > 0 ? 1 : 0
  } catch (error) {
    if (error instanceof SetupError || error instanceof ConfigError || error instanceof CheckpointMismatchError) {
      err.write(`migrate: ${error.message}\n`)
      if (error instanceof UsageError) err.write(`${usage()}\n`)
      return 2
    }
    err.write(`migrate: the copy stopped: ${(error as Error).message}\n  run the same command again to go on from the last checkpoint; what is copied is skipped\n`)
    return 1
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
    await closeAll()
  }
}

process.exitCode = await main(process.argv.slice(2), process.env)
