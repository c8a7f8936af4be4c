import type { FastifyInstance } from 'fastify'

/** A client with a cookie jar that submits forms as a browser would, with the last page's CSRF token. */
export class FormClient {
  readonly #cookies = new Map<string, string>()
  #token = ''
  constructor (readonly app: FastifyInstance) {}

  async get (url: string, headers: Record<string, string> = {}): Promise<Awaited<ReturnType<FastifyInstance['inject']>>> {
    const response = await this.app.inject({ url, headers: { ...headers, cookie: this.cookieHeader() } })
    this.#keep(response)
    this.#token = /name="_csrf" value="([^"]+)"/.exec(response.body)?.[1] ?? this.#token
    return response
  }

  async post (url: string, fields: Record<string, string>): Promise<Awaited<ReturnType<FastifyInstance['inject']>>> {
    const response = await this.app.inject({
      method: 'POST',
      url,
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ ...fields, _csrf: this.#token }).toString()
    })
    this.#keep(response)
    return response
  }

  cookieNames (): string[] {
    return [...this.#cookies.keys()]
  }

  cookieHeader (): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${encodeURIComponent(value)}`).join('; ')
  }

  #keep (response: { cookies: Array<{ name: string, value: string }> }): void {
    for (const { name, value } of response.cookies) this.#cookies.set(name, value)
  }
}
