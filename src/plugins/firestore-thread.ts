/**
 * The thread that holds the app's Firestore client (started by src/plugins/firestore-worker.ts):
 * it runs each operation the main thread sends and answers with its result, or its error as data.
 * Built as dist/plugins/firestore-thread.js.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { clientOps, makeFirestore, type FirestoreConnection } from './firestore-ops.js'
import type { OpsReply, OpsRequest } from './firestore-worker.js'

const port = parentPort!
const db = makeFirestore(workerData as FirestoreConnection)
const ops = clientOps(db)

port.on('message', (message: OpsRequest | { close: true }) => {
  if ('close' in message) {
    // The client's channels closed, the main thread ends the thread.
    db.terminate().finally(() => { port.postMessage({ closed: true }) })
    return
  }
  const { id, op, args } = message
  const reply = (answer: OpsReply): void => {
    try {
      port.postMessage(answer)
    } catch (err) {
      // A value that cannot be copied to the main thread: its call fails, the thread goes on.
      port.postMessage({ id, ok: false, error: { message: `the answer of ${op} cannot cross threads: ${(err as Error).message}` } } satisfies OpsReply)
    }
  }
  const run = ops[op] as (...args: unknown[]) => Promise<unknown>
  run(...args).then((value) => { reply({ id, ok: true, value }) }, (err: unknown) => {
    const { message, code, details } = (err ?? {}) as Error & { code?: unknown, details?: unknown }
    // An error's own fields do not cross threads (a message carries its message and stack only): the code is what callers test.
    reply({ id, ok: false, error: { message: String(message ?? err), code, details } })
  })
})
