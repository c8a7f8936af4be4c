import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { projectRoot } from '../lib/project-root.js'
import type { FirestoreConnection, FirestoreOps } from './firestore-ops.js'

type Op = keyof FirestoreOps

export interface OpsRequest { id: number, op: Op, args: unknown[] }
export type OpsReply =
  | { id: number, ok: true, value: unknown }
  | { id: number, ok: false, error: { message: string, name?: string, code?: unknown, details?: unknown, stack?: string } }

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
  let next = 0
  const pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()

  const failAll = (err: Error): void => {
    for (const { reject } of pending.values()) reject(err)
    pending.clear()
  }
  const start = (): Worker => {
    if (worker !== undefined) return worker
    const started = new Worker(threadEntry, { workerData: connection })
    // The server's socket keeps the process up; the thread alone never does.
    started.unref()
    started.on('message', (reply: OpsReply | { closed: true }) => {
      if ('closed' in reply) return
      const call = pending.get(reply.id)
      if (call === undefined) return
      pending.delete(reply.id)
      if (reply.ok) call.resolve(reply.value)
      else call.reject(Object.assign(new Error(reply.error.message), reply.error))
    })
    started.on('error', (err) => { failAll(err) })
    started.on('exit', (code) => {
      if (worker === started) worker = undefined
      failAll(new Error(`the Firestore thread exited (code ${code})`))
    })
    worker = started
    return started
  }
  const call = (op: Op) => async (...args: unknown[]): Promise<never> => await new Promise((resolve, reject) => {
    const id = ++next
    pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
    start().postMessage({ id, op, args } satisfies OpsRequest)
  })
  const ops = {
    create: call('create'),
    add: call('add'),
    get: call('get'),
    delete: call('delete'),
    query: call('query'),
    queryAtOnce: call('queryAtOnce'),
    updateAll: call('updateAll')
  } satisfies Record<Op, unknown> as FirestoreOps
  return {
    ops,
    started: () => worker !== undefined,
    close: async () => {
      const closing = worker
      if (closing === undefined) return
      // Held open until it has ended: the client closes its channels first, within a second.
      closing.ref()
      const closed = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        closing.on('message', (reply: object) => { if ('closed' in reply) { clearTimeout(timer); resolve() } })
        closing.once('exit', () => { clearTimeout(timer); resolve() })
      })
      closing.postMessage({ close: true })
      await closed
      await closing.terminate()
    }
  }
}
