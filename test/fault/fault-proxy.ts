import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'

/**
 * What the proxy does to traffic:
 * - forward: passes it both ways;
 * - slow: passes it both ways, each chunk `delayMs` late;
 * - drop-answers: passes requests on and drops every answer, so a write can land while its
 *   caller never hears of it;
 * - blackhole: drops everything, holding connections open;
 * - reset: refuses new connections with a reset.
 */
export type FaultMode = { kind: 'forward' | 'drop-answers' | 'blackhole' | 'reset' } | { kind: 'slow', delayMs: number }

/**
 * A TCP proxy on 127.0.0.1 in front of a backend (the Firestore emulator), for faults that
 * leave the backend's data alone. Open connections take a new mode at once; leaving a mode
 * that dropped or delayed bytes cuts them, since their streams would not be whole.
 */
export class FaultProxy {
  #mode: FaultMode = { kind: 'forward' }
  readonly #sockets = new Set<Socket>()

  private constructor (readonly server: Server, readonly target: { host: string, port: number }) {
    server.on('connection', (client) => this.#accept(client))
  }

  static async start (t: Test, target: { host: string, port: number }): Promise<FaultProxy> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const proxy = new FaultProxy(server, target)
    t.teardown(async () => { await proxy.close() })
    return proxy
  }

  get address (): string {
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`
  }

  set (mode: FaultMode): void {
    // Bytes were dropped, or are still on their way late: what comes next would not follow them.
    const dropped = this.#mode.kind !== 'forward' && this.#mode.kind !== 'reset'
    this.#mode = mode
    if (dropped || mode.kind === 'reset') this.cut()
  }

  /** Cuts every open connection, as a network fault would. */
  cut (): void {
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }

  async close (): Promise<void> {
    this.#mode = { kind: 'reset' }
    this.cut()
    await new Promise((resolve) => this.server.close(resolve))
  }

  #track (socket: Socket): void {
    this.#sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => this.#sockets.delete(socket))
  }

  #accept (client: Socket): void {
    this.#track(client)
    if (this.#mode.kind === 'reset') {
      client.resetAndDestroy()
      return
    }
    const upstream = connect(this.target.port, this.target.host)
    this.#track(upstream)
    client.on('data', (chunk: Buffer) => { this.#pass(chunk, upstream, 'request') })
    upstream.on('data', (chunk: Buffer) => { this.#pass(chunk, client, 'answer') })
    upstream.once('close', () => client.destroy())
    client.once('close', () => upstream.destroy())
  }

  #pass (chunk: Buffer, to: Socket, direction: 'request' | 'answer'): void {
    const mode = this.#mode
    if (mode.kind === 'blackhole' || (mode.kind === 'drop-answers' && direction === 'answer')) return
    // Timers of one delay fire in the order they were set: the stream stays in order.
    if (mode.kind === 'slow') setTimeout(() => { if (!to.destroyed) to.write(chunk) }, mode.delayMs)
    else if (!to.destroyed) to.write(chunk)
  }
}
