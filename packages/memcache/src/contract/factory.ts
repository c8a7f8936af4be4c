import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'

/** How a contract suite gets the stores it tests. */
export interface StoreFactory<S> {
  /** A store for one test. */
  make: (t: Test) => Promise<S>
  /** Another client of the same backend, as a second process would have; the same store where nothing else can share it. */
  peer: (t: Test, store: S) => Promise<S>
}

/** A name no other test (or earlier run against the same backend) uses. */
export function uniqueName (prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

export async function waitUntil (check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(5)
  }
}
