/**
 * A small load generator over real sockets (node:http, keep-alive). Closed loop:
 * `clients` virtual clients each send one request at a time, back to back; open loop:
 * requests arrive at a fixed rate. Either runs until the duration or the request count
 * is used up (or stop()), and every request is recorded.
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'

/** What one request sends: who visits (the user agent), and any other headers. */
export interface Planned {
  visitor: string
  headers?: Record<string, string>
}

export interface LoadRecord {
  /** Index of the virtual client that sent it (closed loop), or of its slot (open loop). */
  client: number
  /** Sent by the open loop, on schedule. */
  arrival: boolean
  /** Global order in which requests were sent. */
  seq: number
  /** The user agent sent. */
  visitor: string
  accept: string | undefined
  /** Epoch milliseconds (Date.now) when the request was sent, and when it ended (body read, or error). */
  start: number
  end: number
  /** Latency in milliseconds (monotonic clock). */
  ms: number
  /** HTTP status, when a response came; otherwise `error` says what happened. */
  status?: number
  error?: string
  /** Response headers the load keeps (see LoadOptions.keepHeaders). */
  headers: Record<string, string>
  /** Bytes of body received. */
  bytes: number
  /** The body arrived in full: the response ended normally and matched its content-length, if any. */
  complete: boolean
  /** What `inspect` found wrong with the body, if anything. */
  problem?: string
  /** Kept only when `keepBody` asks for it. */
  body?: string
}

export interface LoadOptions {
  url: string
  /**
   * Closed loop: concurrent virtual clients, each sending its next request when the last one
   * is answered. Open loop (with ratePerSecond): the most requests in flight at once.
   */
  clients: number
  /**
   * Open loop: requests are sent on a fixed schedule, this many a second, whether or not
   * earlier ones were answered, as independent users arrive: a stalled server meets the
   * arrivals a closed loop would have held back. A request due while `clients` are in
   * flight is not sent, and recorded with the error 'client limit'.
   */
  ratePerSecond?: number
  /** Stops sending after this long (requests in flight still finish). */
  durationMs?: number
  /** Stops sending after this many requests in all. */
  maxRequests?: number
  /** Who the next request is for; seq is the global request number. */
  plan: (client: number, seq: number) => Planned
  /** A request not answered in full after this long is recorded as an error and its socket dropped (default 30 s). */
  timeoutMs?: number
  /**
   * A new connection for every request (the request says `Connection: close`), as clients that
   * do not keep connections alive do; otherwise connections are kept alive and reused.
   */
  fresh?: boolean
  /** A client waits this long after a network error, so a refused port is not hammered in a tight loop. */
  pauseAfterErrorMs?: number
  keepHeaders?: readonly string[]
  /** Returns what is wrong with a body, or undefined. */
  inspect?: (record: LoadRecord, body: string) => string | undefined
  keepBody?: (record: LoadRecord) => boolean
}

export interface LoadRun {
  /** Every finished request so far, in the order they finished. */
  readonly records: LoadRecord[]
  /** Requests sent and not finished yet. */
  inFlight: () => number
  /** Stops sending new requests; those in flight finish. */
  stop: () => void
  /** Resolves with every record once every client has stopped. */
  done: Promise<LoadRecord[]>
}

const DEFAULT_HEADERS = ['x-cache', 'content-type', 'content-length', 'retry-after', 'connection']

function pick (headers: IncomingHttpHeaders, names: readonly string[]): Record<string, string> {
  const kept: Record<string, string> = {}
  for (const name of names) {
    const value = headers[name]
    if (value !== undefined) kept[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return kept
}

async function send (agent: Agent, url: URL, client: number, seq: number, planned: Planned, options: LoadOptions): Promise<LoadRecord> {
  const headers: Record<string, string> = { 'user-agent': planned.visitor, ...planned.headers }
  const record: LoadRecord = {
    client,
    arrival: options.ratePerSecond !== undefined,
    seq,
    visitor: planned.visitor,
    accept: headers.accept,
    start: Date.now(),
    end: 0,
    ms: 0,
    headers: {},
    bytes: 0,
    complete: false
  }
  const started = performance.now()
  await new Promise<void>((resolve) => {
    let settled = false
    const finish = (error?: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (error !== undefined) record.error = error
      record.end = Date.now()
      record.ms = performance.now() - started
      resolve()
    }
    const req = request(url, { agent, headers }, (res) => {
      record.status = res.statusCode
      record.headers = pick(res.headers, options.keepHeaders ?? DEFAULT_HEADERS)
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => { chunks.push(chunk); record.bytes += chunk.length })
      res.on('end', () => {
        const length = res.headers['content-length']
        record.complete = res.complete && (length === undefined || Number(length) === record.bytes)
        const body = Buffer.concat(chunks).toString()
        if (options.inspect !== undefined) record.problem = options.inspect(record, body)
        if (options.keepBody?.(record) === true) record.body = body
        finish()
      })
      // A connection cut mid-body: a status, but no complete body.
      res.on('error', (err) => finish(`body: ${(err as NodeJS.ErrnoException).code ?? err.message}`))
      res.on('close', () => finish(record.complete ? undefined : 'body: connection closed before the end'))
    })
    req.on('error', (err) => finish((err as NodeJS.ErrnoException).code ?? err.message))
    const timer = setTimeout(() => {
      finish('client timeout')
      req.destroy()
    }, options.timeoutMs ?? 30_000)
    req.end()
  })
  return record
}

export function runLoad (options: LoadOptions): LoadRun {
  const url = new URL(options.url)
  const agent = new Agent({ keepAlive: options.fresh !== true, maxSockets: options.clients })
  const records: LoadRecord[] = []
  const stopAt = performance.now() + (options.durationMs ?? Infinity)
  const maxRequests = options.maxRequests ?? Infinity
  if (!Number.isFinite(stopAt) && !Number.isFinite(maxRequests)) throw new Error('a load needs a duration or a request count')
  let seq = 0
  let sending = 0
  let stopped = false
  const more = () => !stopped && performance.now() < stopAt && seq < maxRequests

  async function virtualClient (client: number): Promise<void> {
    while (more()) {
      const mine = seq++
      sending++
      const record = await send(agent, url, client, mine, options.plan(client, mine), options)
      sending--
      records.push(record)
      if (record.status === undefined) await sleep(options.pauseAfterErrorMs ?? 20)
    }
  }

  async function arrivals (rate: number): Promise<void> {
    const started = performance.now()
    const pending = new Set<Promise<void>>()
    for (let due = 0; more(); due++) {
      const wait = started + (due * 1000) / rate - performance.now()
      if (wait > 0) await sleep(wait)
      if (!more()) break
      const mine = seq++
      const planned = options.plan(mine % options.clients, mine)
      if (sending >= options.clients) {
        const at = Date.now()
        records.push({ client: -1, arrival: true, seq: mine, visitor: planned.visitor, accept: planned.headers?.accept, start: at, end: at, ms: 0, error: 'client limit', headers: {}, bytes: 0, complete: false })
        continue
      }
      sending++
      const request = send(agent, url, mine % options.clients, mine, planned, options).then((record) => {
        sending--
        records.push(record)
      })
      pending.add(request)
      request.finally(() => pending.delete(request)).catch(() => {})
    }
    await Promise.all(pending)
  }

  const done = (options.ratePerSecond === undefined
    ? Promise.all(Array.from({ length: options.clients }, (_, client) => virtualClient(client)))
    : arrivals(options.ratePerSecond))
    .then(() => records)
    .finally(() => agent.destroy())
  return { records, inFlight: () => sending, stop: () => { stopped = true }, done }
}

/** The p-th percentile (0-100) by nearest rank; NaN for no values. */
export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** Requests that started in [from, to). */
export function startedBetween (records: readonly LoadRecord[], from: number, to = Infinity): LoadRecord[] {
  return records.filter((r) => r.start >= from && r.start < to)
}

/** Requests answered (or failed) before `at`: untouched by anything that happens from then on. */
export function finishedBefore (records: readonly LoadRecord[], at: number): LoadRecord[] {
  return records.filter((r) => r.end < at)
}

export function hitRatio (records: readonly LoadRecord[]): number {
  return records.length === 0 ? NaN : records.filter((r) => r.headers['x-cache'] === 'hit').length / records.length
}

/**
 * When the hit ratio is back: the end of the first window of `windowMs` (sliding by
 * `stepMs`, from `from` on) whose requests are more than `ratio` hits. Undefined if none is.
 */
export function hitsBackAt (records: readonly LoadRecord[], from: number, { ratio = 0.9, windowMs = 500, stepMs = 100, minRequests = 20 } = {}): number | undefined {
  const since = records.filter((r) => r.start >= from).sort((a, b) => a.start - b.start)
  const last = since.at(-1)?.start ?? from
  let first = 0
  let end = 0
  let hits = 0
  for (let at = from; at + windowMs <= last; at += stepMs) {
    // The window [at, at + windowMs) slides over the sorted requests.
    while (end < since.length && since[end]!.start < at + windowMs) hits += since[end++]!.headers['x-cache'] === 'hit' ? 1 : 0
    while (first < end && since[first]!.start < at) hits -= since[first++]!.headers['x-cache'] === 'hit' ? 1 : 0
    const count = end - first
    if (count >= minRequests && hits / count > ratio) return at + windowMs
  }
  return undefined
}

/** A count per status (or per error) for messages. */
export function outcomes (records: readonly LoadRecord[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of records) {
    const key = r.status === undefined ? `error ${r.error ?? '?'}` : `${r.status} ${r.headers['x-cache'] ?? ''}`.trim()
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

export function latencySummary (records: readonly LoadRecord[]): string {
  const ms = records.map((r) => r.ms)
  return `n=${ms.length} p50=${percentile(ms, 50).toFixed(1)} ms p99=${percentile(ms, 99).toFixed(1)} ms max=${Math.max(...ms).toFixed(1)} ms`
}
