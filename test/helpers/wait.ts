import { setTimeout as sleep } from 'node:timers/promises'

/** Polls `check` until it holds; fails, naming `what`, after `timeoutMs`. */
export async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(25)
  }
}

/** Milliseconds one call takes. */
export async function timed<T> (call: () => Promise<T>): Promise<{ value: T, ms: number }> {
  const start = performance.now()
  const value = await call()
  return { value, ms: performance.now() - start }
}
