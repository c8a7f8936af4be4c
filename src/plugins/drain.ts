import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import fp from 'fastify-plugin'

// Not `import … from 'node:http'`: an ES import of node:http builds every export of it, the web
// fetch classes included (about 30 ms at start-up); the module object itself does not.
const { ServerResponse } = process.getBuiltinModule('node:http')

export interface DrainOptions {
  /**
   * Once close() begins, the port keeps accepting for this long. Closing a listening socket resets
   * every connection still in the kernel's accept queue: under load that is several connections
   * whose requests were already sent (measured: 5 to 13 of 16 clients opening a connection per
   * request). During this window those are accepted and answered; every answer says
   * `Connection: close`.
   */
  acceptMs: number
  /**
   * After the port closes, a connection that has sent nothing for this long is closed. Node counts a
   * new connection as busy until its first request arrives, so server.close() would wait for a
   * client (or proxy) that connected and has not sent its request yet, up to the kill.
   */
  firstRequestMs: number
}

/** How often connections are looked at once the port is closed. */
const SWEEP_MS = 50
/** The fewest open connections at which closed ones are looked for. */
const PRUNE_MIN = 64

/**
 * Shutdown that answers every request it has taken on and waits for nothing else:
 * - answers sent while closing carry `Connection: close`, so kept-alive connections end after them:
 *   Fastify adds it to the requests that reach a route once close() has begun, and this plugin to
 *   the answers still being prepared then (no hook on every response for a moment of shutdown);
 * - the port keeps accepting for `acceptMs` (see DrainOptions), then closes (server.close()),
 *   which also closes the connections then idle between two requests;
 * - from then on, every SWEEP_MS: connections that have become idle since (an answer that was
 *   already on its way with keep-alive) are closed, and so are those that have sent nothing
 *   for `firstRequestMs`.
 * Requests in flight, and requests arriving on open connections, are served to the end: the
 * routes answer them (the app sets Fastify's return503OnClosing to false).
 */
export default fp<DrainOptions>(async function drainPlugin (app, { acceptMs, firstRequestMs }) {
  let sweeper: NodeJS.Timeout | undefined
  // The open connections, without a listener per socket: one costs every response on it (Node
  // adds and removes a 'close' listener of its own per response), measured at 2 to 3 times the
  // server CPU per cached page. Closed ones are dropped in bulk as connections come in.
  const open = new Set<Socket>()
  let pruneAt = PRUNE_MIN
  app.server.on('connection', (socket: Socket) => {
    open.add(socket)
    if (open.size < pruneAt) return
    for (const known of open) if (known.destroyed) open.delete(known)
    pruneAt = Math.max(PRUNE_MIN, 2 * open.size)
  })

  app.addHook('preClose', async () => {
    // Requests that came in before closing began, still in their handlers: their answers end the connection too.
    for (const socket of open) {
      // A connection's answer in progress, as Node keeps it (as http-terminator finds it too).
      const answer = (socket as Socket & { _httpMessage?: unknown })._httpMessage
      if (answer instanceof ServerResponse && !answer.headersSent) answer.setHeader('connection', 'close')
    }
    // app.inject() alone, or never listened: no sockets to look after.
    if (!app.server.listening) return
    if (acceptMs > 0) await sleep(acceptMs)
    // Fastify calls server.close() as soon as this hook returns.
    const portClosedAt = Date.now()
    let silent = 0
    sweeper = setInterval(() => {
      app.server.closeIdleConnections()
      const now = Date.now()
      // Every connection was accepted before the port closed: its silence counts from then.
      for (const socket of open) {
        if (!socket.destroyed && socket.bytesRead === 0 && now - portClosedAt >= firstRequestMs) {
          silent++
          socket.destroy()
        }
      }
    }, SWEEP_MS)
    sweeper.unref()
    app.server.once('close', () => {
      clearInterval(sweeper)
      if (silent > 0) app.log.info({ connections: silent }, `closed connections that sent no request within ${firstRequestMs} ms`)
    })
  })
  app.addHook('onClose', async () => { clearInterval(sweeper) })
}, { name: 'drain', fastify: '5.x' })
