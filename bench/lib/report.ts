/** The benchmark's results: their shape, the Markdown table and the SVG chart. */
import type { ColdStartResults } from './cold-start.js'
import { libraryMarkdown, type LibraryResults } from './library.js'

export interface PerRequest { queries: number, documentsRead: number, writes: number }

export interface ScenarioResult {
  /** HIT+OTEL: HIT with OpenTelemetry on, exporting to a local sink. */
  name: 'LIMIT' | 'HIT' | 'HIT+OTEL' | 'NEW' | 'COLD'
  description: string
  /** Server processes under load. */
  servers: number
  connections: number
  /** Completed responses in the measured window (any status). */
  requests: number
  durationSeconds: number
  /** requests / durationSeconds. */
  reqPerSec: number
  ratioToLimit: number | null
  /** Every response's latency, measured by the load generator (ms). */
  latencyMs: { p50: number, p90: number, p99: number, max: number, mean: number }
  /** autocannon's own histogram (2xx only, whole ms), for reference. */
  autocannonLatencyMs: { p50: number, p99: number }
  errors: number
  timeouts: number
  non2xx: number
  statusCodes: Record<string, number>
  /** Responses by x-cache header ('none': absent). */
  xCache: Record<string, number>
  /** Responses without `x-cache: hit`, and their share; null for LIMIT (no such header). */
  nonHits: number | null
  nonHitShare: number | null
  /** Deltas of `instance.visits` of every server's GET /stats over the window; null for LIMIT. */
  firestore: (PerRequest & { perRequest: PerRequest }) | null
  /** From the harness's redis-server (INFO); null when not counted. */
  redis: {
    /** total_commands_processed delta minus the harness's own commands and the background flushes. */
    commands: number
    perRequest: number
    /** The harness's own commands in the window (INFO snapshot, DELs of COLD). */
    harness: number
    /** HINCRBY calls: the app's cache-stats flush (at most one batch per 2 s per process), not counted in `commands`. */
    background: number
    /** calls per command name over the window (commands inside Lua scripts included), harness's removed. */
    byCommand: Record<string, number>
    /**
     * Estimated share of `perRequest` that is idle background (what the idle HIT server sent while LIMIT ran,
     * per second and process, × this scenario's processes / its req/s). LIMIT itself: its figure is that background.
     */
    idleBackgroundPerRequest?: number
  } | null
  /** Largest VmRSS sampled during the window, per server process (MB). */
  rssMaxMB: number[]
  /** CPU time of each server process over the window, as a share of one core. */
  serverCpuPercent: number[]
  /** CPU of the load generator process over its run, as a share of one core. */
  loaderCpuPercent: number
  /**
   * The server core's busy time over the window (/proc/stat), of it interrupts (the loopback network), and
   * what was neither interrupts nor the server process(es): other work that competed with the server. Null when not pinned.
   */
  serverCore: { busyPercent: number, irqPercent: number, otherPercent: number } | null
  /**
   * The load generator's core: busy time, and its parts: interrupts, the loader, redis-server and the emulator
   * (when started here), and other processes. Busy near 100 %: the loader (or the emulator) had no spare CPU.
   */
  loadCore: { busyPercent: number, irqPercent: number, loaderPercent: number, backendsPercent: number, otherPercent: number } | null
  /** HIT and LIMIT, measured in turns: each turn's figures; the row itself is the turn of median server CPU per response. */
  turns?: Array<{ reqPerSec: number, serverMicrosPerResponse: number, p99Ms: number }>
  /** COLD only: how the list went away (its TTL, or the harness's DELs), how often, and what each time cost. */
  cold?: {
    mode: 'ttl' | 'del'
    ttlSeconds: number | null
    deleteEveryMs: number | null
    /** DELs sent by the harness (del mode), each followed by a PUBLISH of `changed` on the key's channel. */
    deletes: number
    /** Times the key went away: `expired` keyspace events (ttl), DELs that found it (del). */
    expiries: number
    /** Firestore figures of both processes over the window, per expiry. */
    queriesPerExpiry: number | null
    documentsReadPerExpiry: number | null
    writesPerExpiry: number | null
  }
}

export interface ColdStart { server: string, ms: number }

/** One server's share of a side-by-side round. */
export interface SideBySideServer {
  requests: number
  reqPerSec: number
  /** CPU time per response, in microseconds: user space, and the kernel on the server's behalf (its network work). */
  userMicrosPerResponse: number
  systemMicrosPerResponse: number
  errors: number
  non2xx: number
  hits: number
}

/** HIT and LIMIT loaded at once, in rounds, each by half the connections; ratio = LIMIT ÷ HIT CPU per response. */
export interface SideBySide {
  /** Which HIT server: the bench's (Redis and the emulator), or one without a Firestore client in its process. */
  name: string
  description: string
  rounds: Array<{ hit: SideBySideServer, limit: SideBySideServer, cpuRatio: number }>
  cpuRatio: number
  hitMicrosPerResponse: number
  limitMicrosPerResponse: number
}

export interface BenchResults {
  mode: 'full' | 'smoke'
  date: string
  machine: {
    cpuModel: string
    /** CPUs this run may use (affinity), and online in the machine. */
    cores: number
    onlineCpus: number
    nodeVersion: string
    platform: string
    kernel: string
    memoryMB: number
    redisVersion: string
    autocannonVersion: string
    /** 1, 5 and 15 minute load averages when the run started: other work competes for the cores. */
    loadAverageAtStart: number[]
  }
  settings: {
    scenarioSeconds: number
    /** HIT and LIMIT: turns of each, and the measured seconds of one turn. */
    turns: number
    turnSeconds: number
    /** COLDSTART: counted starts of each set-up (after one warm-up round). */
    coldStartRounds: number
    warmupSeconds: number
    connections: number
    cold: { expiry: 'ttl' | 'del', ttlSeconds: number | null, deleteEveryMs: number | null }
    /** The server's entry point (dist/server.js unless BENCH_SERVER). */
    server: string
    /** The repository's commit and whether src/ (or templates, the lock file) had uncommitted changes. */
    source: { commit: string, uncommittedChanges: boolean } | null
    /** BENCH_SERVER_LABEL: what the server build is, when BENCH_SERVER points elsewhere. */
    serverLabel?: string
    pinning: { serverCore: number | null, loadCore: number | null, note: string }
    rateLimitWrites: number
    visitsCollection: string
    cacheNamespace: string
    recentVisitsKey: string
    emulator: string
    redis: string
  }
  /**
   * HIT against LIMIT. The headline is measured side by side: both servers loaded at once, so whatever
   * the machine does in that window (the kernel's share of a response swings by half between windows
   * here) weighs on both alike. The turns (one server after the other) are kept for req/s and latency.
   */
  hitPath: {
    turns: number
    secondsPerTurn: number
    /** The HIT page LIMIT replays, and the visits it lists. */
    pageBytes: number
    visitsListed: number
    /** Medians of the side-by-side rounds (user + system CPU per response). */
    hitMicrosPerResponse: number
    limitMicrosPerResponse: number
    /** LIMIT ÷ HIT server CPU per response, median of the side-by-side rounds: 1 means HIT costs what the bare route costs. */
    cpuRatio: number
    /** The same ratio from the turns (medians of each side's turns). */
    turnsCpuRatio: number
    /** HIT ÷ LIMIT req/s (medians of the turns). */
    reqPerSecRatio: number
    sideBySide: SideBySide[]
  }
  /** COLDSTART: spawn → first 200 of a bare Fastify process and of the server in both set-ups, in turns. */
  coldStarts: ColdStartResults
  /** The start of each scenario's server process (spawn → first 200), a by-product of the scenarios. */
  coldStart: { each: ColdStart[], medianMs: number, minMs: number, maxMs: number }
  scenarios: ScenarioResult[]
  /** The cache library against bare ioredis (bench/lib/library.ts). */
  library: LibraryResults
  /** What the harness started (all stopped by the end): for checking nothing is left running. */
  started: Array<{ what: string, pid: number, port?: number }>
  notes: string[]
}

const fixed = (n: number | null | undefined, digits: number): string =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits)
const int = (n: number): string => Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ' ')
const perReq = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? '–' : n === 0 ? '0' : n < 0.001 ? '< 0.001' : n.toFixed(n >= 10 ? 1 : 3)
const percent = (share: number | null): string => share === null ? '–' : `${(share * 100).toFixed(share > 0 && share < 0.001 ? 3 : 1)} %`
const list = (values: number[], digits: number): string => values.length === 0 ? '–' : values.map((v) => fixed(v, digits)).join(' / ')

/** Server CPU time per response, in microseconds: what a response costs the server, whatever bounds req/s. */
export function serverMicrosPerResponse (s: { serverCpuPercent: number[], durationSeconds: number, requests: number }): number {
  const cpuSeconds = s.serverCpuPercent.reduce((sum, p) => sum + p, 0) / 100 * s.durationSeconds
  return s.requests === 0 ? NaN : cpuSeconds * 1e6 / s.requests
}

export function markdown (results: BenchResults): string {
  const header = ['Scenario', 'req/s', '× LIMIT', 'server µs/resp', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'non-hit', 'FS queries/req', 'FS docs read/req', 'FS writes/req', 'Redis cmds/req', 'RSS max MB', 'server CPU %', 'other CPU on server core %', 'loader CPU %']
  const rows = results.scenarios.map((s) => [
    `**${s.name}**`,
    int(s.reqPerSec),
    s.ratioToLimit === null ? '–' : `${fixed(s.ratioToLimit, 2)}`,
    fixed(serverMicrosPerResponse(s), 1),
    fixed(s.latencyMs.p50, 2),
    fixed(s.latencyMs.p99, 2),
    String(s.errors),
    String(s.non2xx),
    s.nonHits === null ? '–' : `${int(s.nonHits)} (${percent(s.nonHitShare)})`,
    perReq(s.firestore?.perRequest.queries),
    perReq(s.firestore?.perRequest.documentsRead),
    perReq(s.firestore?.perRequest.writes),
    // LIMIT uses no Redis: its window only shows the idle HIT server's background (in latest.json).
    s.name === 'LIMIT' ? '–' : perReq(s.redis?.perRequest),
    list(s.rssMaxMB, 0),
    list(s.serverCpuPercent, 0),
    s.serverCore === null ? '–' : fixed(s.serverCore.otherPercent, 0),
    fixed(s.loaderCpuPercent, 0)
  ])
  const table = [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
  const hit = results.scenarios.find((s) => s.name === 'HIT')
  const limitOf = (r: BenchResults) => r.scenarios.find((s) => s.name === 'LIMIT')
  const cold = results.scenarios.find((s) => s.name === 'COLD')
  const { settings, machine, coldStart } = results
  const lines = [
    `## VisitMe benchmark${results.mode === 'smoke' ? ' (SMOKE run: figures are not meaningful)' : ''}`,
    '',
    `${results.date} · ${machine.cpuModel} · ${machine.cores} cores · Node.js ${machine.nodeVersion} · redis-server ${machine.redisVersion} · autocannon ${machine.autocannonVersion}`,
    `Server: \`${settings.server.replace(/^.*\/(dist\/server\.js)$/, '$1')}\`` +
      (settings.source === null ? '' : ` of commit ${settings.source.commit}${settings.source.uncommittedChanges ? ' with uncommitted changes in src/' : ''}`) +
      (settings.serverLabel === undefined ? '' : ` (${settings.serverLabel})`) + '.',
    `${settings.scenarioSeconds} s per scenario after a ${settings.warmupSeconds} s warm-up, ${settings.connections} connections; ` +
      `load average at start ${machine.loadAverageAtStart.map((l) => l.toFixed(2)).join(' ')}.`,
    '',
    `**Headline: by server CPU per response, LIMIT / HIT = ${fixed(results.hitPath.cpuRatio, 2)}** ` +
      `(HIT ${fixed(results.hitPath.hitMicrosPerResponse, 1)} µs, LIMIT ${fixed(results.hitPath.limitMicrosPerResponse, 1)} µs: medians of ` +
      `${results.hitPath.sideBySide[0]?.rounds.length ?? 0} rounds of ${settings.turnSeconds} s in which both were loaded at once, ` +
      `the ${results.hitPath.visitsListed}-visit page of ${int(results.hitPath.pageBytes)} bytes). ` +
      `In turns, one after the other: LIMIT / HIT = ${fixed(results.hitPath.turnsCpuRatio, 2)}, HIT / LIMIT by req/s = ${fixed(results.hitPath.reqPerSecRatio, 2)}` +
      (hit?.turns === undefined
        ? '.'
        : ` (turns, server µs/resp: HIT ${hit.turns.map((t) => fixed(t.serverMicrosPerResponse, 1)).join(', ')}; ` +
          `LIMIT ${limitOf(results)?.turns?.map((t) => fixed(t.serverMicrosPerResponse, 1)).join(', ') ?? '–'}).`),
    '',
    sideBySideMarkdown(results.hitPath.sideBySide),
    '',
    coldStartMarkdown(results.coldStarts),
    '',
    table,
    '',
    '- **Scenario servers\' starts** (spawn of `node dist/server.js` → first `200` on `GET /`, Redis and emulator already up, under no load): ' +
      `median ${int(coldStart.medianMs)} ms (${coldStart.each.map((c) => `${c.server} ${int(c.ms)} ms`).join(', ')}).`,
    ...(cold?.cold === undefined
      ? []
      : [`- **COLD**: ${cold.cold.mode === 'ttl'
          ? `the list expired ${cold.cold.expiries} times (TTL ${cold.cold.ttlSeconds} s)`
          : `the harness deleted the list (and announced it) every ${cold.cold.deleteEveryMs} ms: ${cold.cold.expiries} expiries (${cold.cold.deletes} DELs)`}; ` +
        `per expiry, across both processes: ${fixed(cold.cold.queriesPerExpiry, 2)} Firestore queries, ` +
        `${fixed(cold.cold.documentsReadPerExpiry, 1)} documents read, ${fixed(cold.cold.writesPerExpiry, 2)} writes; ` +
        `${cold.errors} errors, ${cold.non2xx} non-2xx of ${int(cold.requests)} requests` +
        ` (x-cache: ${Object.entries(cold.xCache).map(([k, v]) => `${k} ${int(v)}`).join(', ')}).`]),
    ...(hit === undefined ? [] : [`- **HIT**: x-cache ${Object.entries(hit.xCache).map(([k, v]) => `${k} ${int(v)}`).join(', ')}.`]),
    ...results.notes.map((note) => `- ${note}`),
    '',
    libraryMarkdown(results.library)
  ]
  return lines.join('\n') + '\n'
}

/** The side-by-side rounds: each HIT server against LIMIT, user and kernel CPU per response apart. */
export function sideBySideMarkdown (all: SideBySide[]): string {
  const header = ['HIT server', 'round', 'HIT µs/resp (user + kernel)', 'LIMIT µs/resp (user + kernel)', 'LIMIT / HIT', 'HIT req/s', 'LIMIT req/s']
  const cpu = (s: SideBySideServer): string =>
    `${fixed(s.userMicrosPerResponse + s.systemMicrosPerResponse, 1)} (${fixed(s.userMicrosPerResponse, 1)} + ${fixed(s.systemMicrosPerResponse, 1)})`
  const rows = all.flatMap((side) => [
    ...side.rounds.map((r, i) => [`${side.name}`, String(i + 1), cpu(r.hit), cpu(r.limit), fixed(r.cpuRatio, 3), int(r.hit.reqPerSec), int(r.limit.reqPerSec)]),
    [`**${side.name}**`, '**median**', `**${fixed(side.hitMicrosPerResponse, 1)}**`, `**${fixed(side.limitMicrosPerResponse, 1)}**`, `**${fixed(side.cpuRatio, 3)}**`, '', '']
  ])
  return [
    '### HIT and LIMIT side by side',
    '',
    ...all.map((side) => `- **${side.name}**: ${side.description}`),
    '',
    [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
  ].join('\n')
}

/** The COLDSTART table: each set-up's median start against the bare Fastify process's. */
export function coldStartMarkdown (c: ColdStartResults): string {
  const rows = c.series.map((s) => [
    `**${s.name}**`, int(s.medianMs), fixed(s.ratioToBare, 2), int(s.cpuMedianMs), fixed(s.firstRequestMedianMs, 1),
    s.databaseCalls === null ? '–' : s.databaseCalls.join(' ')
  ])
  return [
    `### COLDSTART: spawn → first \`200\` on \`GET /\` (${c.rounds} starts each, in turns; NODE_OPTIONS=\`${c.nodeOptions}\`)`,
    '',
    '| Set-up | median ms | × bare | CPU ms to first 200 (median) | first request ms (median) | database calls after the first page |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows.map((cells) => `| ${cells.join(' | ')} |`),
    '',
    'Each start is a new process on the server\'s core, polled with GET / every 2 ms from its spawn; "first request" is the request that got the first 200 ' +
      '(sent once the process listened). Database calls are `instance.visits` (queries + documents read + writes) of its GET /stats after that page: ' +
      'with Redis they should be 0 (the list is in Redis, its visitor the newest: the Firestore client is not even made); embedded, the memory repository ' +
      'stores the visit.',
    ''
  ].join('\n')
}

const escapeXml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

/** A horizontal bar per scenario: its req/s as a share of LIMIT's. */
export function svgChart (results: BenchResults): string {
  const width = 720
  const left = 90
  const right = 250
  const top = 64
  const bar = 28
  const gap = 16
  const plot = width - left - right
  const scenarios = results.scenarios
  const height = top + scenarios.length * (bar + gap) + 24
  const maxRatio = Math.max(1, ...scenarios.map((s) => s.ratioToLimit ?? 0))
  const x = (ratio: number): number => left + ratio / maxRatio * plot
  const colour: Record<string, string> = { LIMIT: '#9aa5b1', HIT: '#2f6fdf', NEW: '#e08a1e', COLD: '#c2413b' }
  const bars = scenarios.map((s, i) => {
    const y = top + i * (bar + gap)
    const ratio = s.ratioToLimit ?? 0
    const share = ratio * 100
    const label = `${share.toFixed(share >= 10 ? 0 : share >= 1 ? 1 : 2)} % · ${int(s.reqPerSec)} req/s · p99 ${s.latencyMs.p99.toFixed(1)} ms`
    return `  <text x="${left - 10}" y="${y + bar / 2 + 5}" text-anchor="end" font-weight="bold">${escapeXml(s.name)}</text>\n` +
      `  <rect x="${left}" y="${y}" width="${Math.max(1, x(ratio) - left).toFixed(1)}" height="${bar}" fill="${colour[s.name] ?? '#555'}"/>\n` +
      `  <text x="${(x(ratio) + 8).toFixed(1)}" y="${y + bar / 2 + 5}">${escapeXml(label)}</text>`
  }).join('\n')
  const axisY = top + scenarios.length * (bar + gap) - gap / 2
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((r) =>
    `  <line x1="${x(r).toFixed(1)}" x2="${x(r).toFixed(1)}" y1="${top - 6}" y2="${axisY}" stroke="#ddd"/>\n` +
    `  <text x="${x(r).toFixed(1)}" y="${axisY + 16}" text-anchor="middle" fill="#666">${r * 100}%</text>`).join('\n')
  const title = `VisitMe: req/s as a share of LIMIT${results.mode === 'smoke' ? ' (SMOKE run, not meaningful)' : ''}`
  const subtitle = `LIMIT = bare Fastify serving the same page bytes · ${results.date.slice(0, 10)} · ${results.machine.cpuModel}, ` +
    `${results.machine.cores} cores · Node.js ${results.machine.nodeVersion} · ${results.settings.scenarioSeconds} s each, ${results.settings.connections} connections`
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
  <rect width="100%" height="100%" fill="#fff"/>
  <text x="12" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>
  <text x="12" y="44" fill="#666" font-size="11">${escapeXml(subtitle)}</text>
${ticks}
${bars}
</svg>
`
}
