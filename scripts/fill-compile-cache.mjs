/**
 * Fills V8's compile cache of the built server (dist/compile-cache, see src/server.ts) when the
 * image is built: starts `node dist/server.js` in the embedded mode, waits for its first 200 on
 * GET /, stops it with SIGTERM (the cache is written as the process exits). Plain JavaScript: the
 * image has no TypeScript runner. Run it as the user and with the NODE_OPTIONS the server will
 * run with: the cache directory is per user and per set of V8 flags.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { get } from 'node:http'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

// A free port: the build may run on the host's network.
const probe = createServer().listen(0, '127.0.0.1')
await once(probe, 'listening')
const { port } = probe.address()
probe.close()
const server = spawn(process.execPath, ['dist/server.js'], {
  // Only what the embedded mode needs: no Redis, no database, whatever the build's environment has.
  env: { PATH: process.env.PATH, NODE_OPTIONS: process.env.NODE_OPTIONS ?? '', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
  stdio: 'inherit'
})
const exited = once(server, 'exit')
const status = () => new Promise((resolve) => {
  get(`http://127.0.0.1:${port}/`, (res) => { res.resume(); resolve(res.statusCode) }).on('error', () => resolve(0))
})
const deadline = Date.now() + 60_000
let answered = 0
while (answered !== 200 && Date.now() < deadline && server.exitCode === null) {
  answered = await status()
  if (answered !== 200) await sleep(50)
}
server.kill('SIGTERM')
const [code] = await exited
if (answered !== 200 || code !== 0) {
  console.error(`fill-compile-cache: the server ${answered === 200 ? `exited with code ${code}` : 'never answered GET / with 200'}`)
  process.exit(1)
}
