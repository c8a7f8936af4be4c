/**
 * LIMIT: the ceiling for a cached page. A bare Fastify route that answers `GET /` with the
 * bytes the real server rendered for the HIT visitor, from memory, with the same content type:
 * no cache, no template, no plugin. The harness starts it like the real server (same node
 * binary, same core, plain JavaScript: it transpiles this file) with
 * PORT, HOST, BENCH_BODY_FILE and BENCH_CONTENT_TYPE.
 * Self-contained (no local imports). It exits on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

const bodyFile = process.env.BENCH_BODY_FILE
const contentType = process.env.BENCH_CONTENT_TYPE
if (bodyFile === undefined || contentType === undefined) {
  throw new Error('BENCH_BODY_FILE and BENCH_CONTENT_TYPE are not set: this process is started by bench/run.ts')
}
const body = readFileSync(bodyFile)

const app = Fastify({ logger: false })
app.get('/', async (_request, reply) => await reply.header('content-type', contentType).send(body))

async function close (): Promise<void> {
  await app.close()
  process.exit(0)
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { close().catch(() => process.exit(1)) })

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
