import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'

export type HarnessRun = { code: number | null, stdout: string, stderr: string } | { code: 'timeout', stdout: string, stderr: string }

/**
 * Runs a bench harness (node with the arguments given) and waits for it, at most `limitMs`: past
 * that it is interrupted (a harness then stops what it started) and answers 'timeout'. Killed
 * if still running when the test ends.
 */
export async function runHarness (t: Test, args: string[], { cwd, env, limitMs }: { cwd: string, env: NodeJS.ProcessEnv, limitMs: number }): Promise<HarnessRun> {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const code = await Promise.race([exited, sleep(limitMs, undefined, { ref: false }).then(() => 'timeout' as const)])
  if (code === 'timeout') {
    child.kill('SIGINT')
    await Promise.race([exited, sleep(20_000, undefined, { ref: false })])
  }
  return { code, stdout, stderr }
}
