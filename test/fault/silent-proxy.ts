import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'

/**
 * A TCP proxy on 127.0.0.1 that can go silent: connections, open ones included, stay up
 * but no byte gets through either way, as over a network path that drops packets (a VPC
 * blip, a failover behind a stale route). Nothing is closed or reset, so only a client's
 * own timeouts can tell. The bytes are held, not lost, as TCP keeps retransmitting them:
 * when the path comes back they arrive, in order.
 */
export class SilentProxy {
  #silent = false
  readonly #sockets = new Set<Socket>()

  private constructor (readonly server: Server, readonly target: { host: string, port: number }) {
    server.on('connection', (client) => this.#accept(client))
  }

  static async start (t: Test, target: { host: string, port: number }): Promise<SilentProxy> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const proxy = new SilentProxy(server, target)
    t.teardown(async () => { await proxy.close() })
    return proxy
  }

  get port (): number {
    return (this.server.address() as { port: number }).port
  }

  get silent (): boolean {
    return this.#silent
  }

  set silent (silent: boolean) {
    this.#silent = silent
    for (const socket of this.#sockets) {
      if (silent) socket.pause()
      else socket.resume()
    }
  }

  async close (): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }

  #track (socket: Socket): void {
    this.#sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => this.#sockets.delete(socket))
    if (this.#silent) socket.pause()
  }

  #accept (client: Socket): void {
    const upstream = connect(this.target.port, this.target.host)
    this.#track(client)
    this.#track(upstream)
    // Not pipe(): a piped stream resumes by itself when its destination drains.
    client.on('data', (chunk: Buffer) => upstream.write(chunk))
    upstream.on('data', (chunk: Buffer) => client.write(chunk))
    upstream.once('close', () => client.destroy())
    client.once('close', () => upstream.destroy())
  }
}
