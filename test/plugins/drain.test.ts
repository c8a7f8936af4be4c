import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import drainPlugin from '../../src/plugins/drain.js'

/** A listening app with a route, its server-side sockets captured as they connect. */
async function listening (withDrain: boolean): Promise<{ app: FastifyInstance, port: number, sockets: Socket[] }> {
  const app = Fastify({ return503OnClosing: false })
  if (withDrain) await app.register(drainPlugin, { acceptMs: 0, firstRequestMs: 300 })
  app.get('/', async () => 'ok')
  const sockets: Socket[] = []
  app.server.on('connection', (socket: Socket) => sockets.push(socket))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, sockets }
}

t.test('the drain plugin adds no listener to a connection: a per-socket listener costs every response on it', async (t) => {
  const counts: number[] = []
  for (const withDrain of [false, true]) {
    const { app, port, sockets } = await listening(withDrain)
    const answer = await fetch(`http://127.0.0.1:${port}/`)
    t.equal(await answer.text(), 'ok')
    counts.push(sockets[0]!.listenerCount('close'))
    await app.close()
  }
  t.equal(counts[1], counts[0], `'close' listeners on a connection: ${counts[0]} bare, ${counts[1]} with the plugin`)
})

t.test('after hundreds of connections came and went, shutdown still ends a connection that sends nothing', async (t) => {
  const { app, port } = await listening(true)
  for (let i = 0; i < 300; i++) {
    const client = connect(port, '127.0.0.1')
    await once(client, 'connect')
    client.destroy()
  }
  const silent = connect(port, '127.0.0.1')
  await once(silent, 'connect')
  const closedByServer = once(silent, 'close')
  const began = Date.now()
  await app.close()
  await closedByServer
  const ms = Date.now() - began
  // firstRequestMs is 300; the bound leaves a loaded machine its headroom.
  t.ok(ms >= 250 && ms < 5000, `closed after ${ms} ms`)
})

t.test('an answer still being prepared when close() begins says Connection: close; one sent before says keep-alive', async (t) => {
  const app = Fastify({ return503OnClosing: false })
  await app.register(drainPlugin, { acceptMs: 0, firstRequestMs: 300 })
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let arrived: () => void = () => {}
  const inHandler = new Promise<void>((resolve) => { arrived = resolve })
  app.get('/now', async () => 'now')
  app.get('/held', async () => { arrived(); await held; return 'held' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  const before = await fetch(`http://127.0.0.1:${port}/now`)
  t.equal(before.headers.get('connection'), 'keep-alive', 'before shutdown, connections are kept alive')
  await before.text()
  const during = fetch(`http://127.0.0.1:${port}/held`)
  await inHandler
  const closed = app.close()
  // preClose has run once the port stops accepting; the held request is still in its handler.
  await new Promise((resolve) => setTimeout(resolve, 50))
  release()
  const answer = await during
  t.equal(await answer.text(), 'held', 'the request in its handler is answered')
  t.equal(answer.headers.get('connection'), 'close', 'and its answer ends the connection')
  await closed
})
