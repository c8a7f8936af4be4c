import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'

/**
 * What a TcpProxy does to traffic:
 * - forward: passes it both ways;
 * - slow: passes it both ways, each chunk `delayMs` late;
 * - drop-answers: passes requests on and drops every answer, so a write can land while its
 *   caller never hears of it;
 * - blackhole: accepts connections and drops everything, holding them open;
 * - reset: refuses new connections with a reset.
 */
export type ProxyMode = 'forward' | 'slow' | 'drop-answers' | 'blackhole' | 'reset'

/** A TCP proxy on 127.0.0.1 in front of a backend, for faults that leave the backend's data alone. */
export class TcpProxy {
  mode: ProxyMode = 'forward'
  /** How late `slow` passes each chunk. */
  delayMs = 200
  readonly #sockets = new Set<Socket>()

  private constructor (readonly server: Server, readonly target: { host: string, port: number }) {
    server.on('connection', (client) => this.#accept(client))
  }

  static async start (t: Test, target: { host: string, port: number }): Promise<TcpProxy> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const proxy = new TcpProxy(server, target)
    t.teardown(async () => { await proxy.close() })
    return proxy
  }

  get address (): string {
    return `127.0.0.1:${(this.server.address() as { port: number }).port}`
  }

  /** Switches mode and cuts the connections already open, as a network fault would. */
  switch (mode: ProxyMode): void {
    this.mode = mode
    this.cut()
  }

  /**
   * Changes mode for the connections already open too. Leaving a mode that dropped or delayed
   * bytes cuts them, since their streams would not be whole.
   */
  set (mode: ProxyMode): void {
    const whole = this.mode === 'forward' || this.mode === 'reset'
    this.mode = mode
    if (!whole || mode === 'reset') this.cut()
  }

  cut (): void {
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
  }

  async close (): Promise<void> {
    this.switch('reset')
    await new Promise((resolve) => this.server.close(resolve))
  }

  #track (socket: Socket): void {
    this.#sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => this.#sockets.delete(socket))
  }

  #accept (client: Socket): void {
    this.#track(client)
    if (this.mode === 'reset') {
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
    if (this.mode === 'blackhole' || (this.mode === 'drop-answers' && direction === 'answer')) return
    // Timers of one delay fire in the order they were set: the stream stays in order.
    if (this.mode === 'slow') setTimeout(() => { if (!to.destroyed) to.write(chunk) }, this.delayMs)
    else if (!to.destroyed) to.write(chunk)
  }
}
