import type { Cache } from '../cache/index.js'

export interface HitRatioSample {
  at: Date
  /** Hits over reads in the interval before `at`, across every namespace; null without reads. */
  hitRatio: number | null
}

/**
 * This instance's hit ratio over the last minutes: the cache's counters, read every
 * `intervalMs`, turned into one ratio per interval. Kept in memory, `size` samples long.
 */
export class HitRatioHistory {
  readonly #cache: Cache
  readonly #intervalMs: number
  readonly #size: number
  readonly #samples: HitRatioSample[] = []
  #last = { hits: 0, misses: 0 }
  #timer?: NodeJS.Timeout

  constructor (cache: Cache, { intervalMs = 10_000, size = 90 }: { intervalMs?: number, size?: number } = {}) {
    this.#cache = cache
    this.#intervalMs = intervalMs
    this.#size = size
  }

  start (): void {
    this.#last = this.#totals()
    this.#timer = setInterval(() => { this.sample() }, this.#intervalMs).unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  sample (at = new Date()): void {
    const totals = this.#totals()
    const hits = totals.hits - this.#last.hits
    const reads = hits + totals.misses - this.#last.misses
    this.#last = totals
    this.#samples.push({ at, hitRatio: reads === 0 ? null : hits / reads })
    if (this.#samples.length > this.#size) this.#samples.shift()
  }

  samples (): HitRatioSample[] {
    return [...this.#samples]
  }

  #totals (): { hits: number, misses: number } {
    let hits = 0
    let misses = 0
    for (const namespace of this.#cache.namespaces()) {
      const counters = this.#cache.counters(namespace)
      hits += counters.hits
      misses += counters.misses
    }
    return { hits, misses }
  }
}

/**
 * The samples as a small inline SVG line chart (0–100 %), drawn on the server: no
 * script, no chart library, nothing fetched by the browser.
 */
export function hitRatioChart (samples: readonly HitRatioSample[], { width = 600, height = 160 } = {}): string {
  const pad = 28
  const plotted = samples.filter((s): s is { at: Date, hitRatio: number } => s.hitRatio !== null)
  const first = samples[0]?.at.getTime() ?? 0
  const span = Math.max(1, (samples.at(-1)?.at.getTime() ?? 0) - first)
  const x = (at: Date) => (pad + (at.getTime() - first) / span * (width - 2 * pad)).toFixed(1)
  const y = (ratio: number) => (height - pad - ratio * (height - 2 * pad)).toFixed(1)
  const grid = [0, 0.5, 1].map((r) =>
    `<line x1="${pad}" x2="${width - pad}" y1="${y(r)}" y2="${y(r)}" class="grid"/><text x="2" y="${Number(y(r)) + 4}">${r * 100}%</text>`).join('')
  const line = plotted.length === 0
    ? `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no reads yet</text>`
    : `<polyline points="${plotted.map((s) => `${x(s.at)},${y(s.hitRatio)}`).join(' ')}" class="ratio"/>` +
      plotted.map((s) => `<circle cx="${x(s.at)}" cy="${y(s.hitRatio)}" r="2.5" class="ratio"/>`).join('')
  const minutes = Math.round(span / 60_000)
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" ` +
    `aria-label="Cache hit ratio over the last ${minutes} minutes">${grid}${line}</svg>`
}
