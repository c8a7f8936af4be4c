import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { freePort } from './ports.js'
import { waitFor } from './wait.js'

// The built server, as the Docker image runs it; `npm test` builds it first.
export const serverJs = fileURLToPath(new URL('../../dist/server.js', import.meta.url))

export interface Running {
  child: ChildProcess
  port: number
  lines: () => Array<Record<string, unknown>>
  exited: Promise<number | null>
}

/** Runs the built server (dist/server.js) with the environment (and node options) given; killed when the test ends. */
export async function startServer (t: Test, env: Record<string, string>, fixedPort?: number, nodeArgs: string[] = []): Promise<Running> {
  const port = fixedPort ?? await freePort()
  const child = spawn(process.execPath, [...nodeArgs, serverJs], {
    env: { PATH: process.env.PATH ?? '', METADATA_SERVER_DETECTION: 'none', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { out += chunk.toString() })
  const lines = () => out.split('\n').filter((l) => l !== '').map((l) => {
    try { return JSON.parse(l) as Record<string, unknown> } catch { return { unparsed: l } }
  })
  await waitFor('the server to listen or exit', () => {
    if (child.exitCode !== null) return true
    return lines().some((l) => typeof l.message === 'string' && l.message.startsWith('Server listening'))
  }, 10_000)
  if (child.exitCode !== null) t.comment(`the server exited at start-up: ${JSON.stringify(lines())}`)
  return { child, port, lines, exited }
}
