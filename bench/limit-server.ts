/**
 * LIMIT: the ceiling for a cached page. A bare Fastify route that answers `GET /` with the
 * response the real server sent the HIT visitor, from memory: its body and its headers (security
 * headers, x-cache, cache-control, vary, content type), set from one object; no cache, no template,
 * no plugin, no hook. The harness starts it like the real server (same node binary and flags, same
 * core, plain JavaScript: it transpiles this file) with PORT, HOST, BENCH_BODY_FILE and BENCH_HEADERS.
 * Self-contained (no local imports). It exits on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

const bodyFile = process.env.BENCH_BODY_FILE
const headersJson = process.env.BENCH_HEADERS
if (bodyFile === undefined || headersJson === undefined) {
  throw new Error('BENCH_BODY_FILE and BENCH_HEADERS are not set: this process is started by bench/run.ts')
}
const body = readFileSync(bodyFile)
const headers = JSON.parse(headersJson) as Record<string, string>

const app = Fastify({ logger: false })
app.get('/', async (_request, reply) => await reply.headers(headers).send(body))

async function close (): Promise<void> {
  await app.close()
  process.exit(0)
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { close().catch(() => process.exit(1)) })

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
