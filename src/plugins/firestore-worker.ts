import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { projectRoot } from '../lib/project-root.js'
import { forwardingOps, type FirestoreConnection, type FirestoreOps } from './firestore-ops.js'

type Op = keyof FirestoreOps
interface Pending { resolve: (value: unknown) => void, reject: (err: Error) => void }

export interface OpsRequest { id: number, op: Op, args: unknown[] }
export type OpsReply =
  | { id: number, ok: true, value: unknown }
  | { id: number, ok: false, error: { message: string, code?: unknown, details?: unknown } }

// Run from the sources (tsx, tests) or from the build (npm start, the image).
const threadEntry = import.meta.url.endsWith('.ts')
  ? join(projectRoot, 'src', 'plugins', 'firestore-thread.ts')
  : join(projectRoot, 'dist', 'plugins', 'firestore-thread.js')

/**
 * The operations of a Firestore client that lives in a worker thread, started on the first call
 * (a page served from the list in Redis never starts it). Why a thread: see FirestoreOps.
 */
export function threadOps (connection: FirestoreConnection): { ops: FirestoreOps, started: () => boolean, close: () => Promise<void> } {
  let worker: Worker | undefined
  let closed = false
  let next = 0
  const pending = new Map<number, Pending>()

  const settle = (id: number): Pending | undefined => {
    const call = pending.get(id)
    pending.delete(id)
    // A call waiting for its answer keeps the process up; the idle thread never does.
    if (pending.size === 0) worker?.unref()
    return call
  }
  const failAll = (err: Error): void => {
    for (const id of [...pending.keys()]) settle(id)?.reject(err)
  }
  const start = (): Worker => {
    if (worker !== undefined) return worker
    const started = new Worker(threadEntry, { workerData: connection })
    started.unref()
    started.on('message', (reply: OpsReply | { closed: true }) => {
      if ('closed' in reply) return
      const call = settle(reply.id)
      if (call === undefined) return
      if (reply.ok) call.resolve(reply.value)
      else {
        // The caller's stack, the thread's message, and the gRPC code and details callers test.
        const { message, code, details } = reply.error
        call.reject(Object.assign(new Error(message), code === undefined ? {} : { code }, details === undefined ? {} : { details }))
      }
    })
    started.on('error', (err) => { failAll(err) })
    started.on('exit', (code) => {
      if (worker === started) worker = undefined
      failAll(new Error(`the Firestore thread exited (code ${code})`))
    })
    worker = started
    return started
  }
  const ops = forwardingOps((op) => async (...args) => await new Promise((resolve, reject) => {
    // After close a call fails, as one on a closed client does, rather than start a thread nothing would end.
    if (closed) throw new Error('the Firestore client is closed')
    const thread = start()
    const id = ++next
    // Throws, and registers nothing, when an argument cannot be copied to the thread.
    thread.postMessage({ id, op, args } satisfies OpsRequest)
    pending.set(id, { resolve, reject })
    thread.ref()
  }))
  return {
    ops,
    started: () => worker !== undefined,
    close: async () => {
      closed = true
      const closing = worker
      if (closing === undefined) return
      // Held open until it has ended: the client closes its channels first, within a second.
      closing.ref()
      const ended = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        closing.on('message', (reply: object) => { if ('closed' in reply) { clearTimeout(timer); resolve() } })
        closing.once('exit', () => { clearTimeout(timer); resolve() })
      })
      closing.postMessage({ close: true })
      await ended
      await closing.terminate()
    }
  }
}
