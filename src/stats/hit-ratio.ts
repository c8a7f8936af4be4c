import type { Cache } from '@visitme/memcache'

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

/** A duration as words: seconds under a minute, else whole minutes; singular or plural. */
export function describeSpan (ms: number): string {
  const seconds = Math.round(ms / 1000)
  if (seconds < 60) return `${seconds} ${seconds === 1 ? 'second' : 'seconds'}`
  const minutes = Math.round(seconds / 60)
  return `${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`
}

/** Tick spacings of the time axis: the smallest that gives at most five intervals is used. */
const TICK_STEPS_MS = [10, 15, 30, 60, 120, 300, 600, 900].map((s) => s * 1000)

/** How long before `now` a tick is, as its label: "now", "−30 s", "−5 min". */
function tickLabel (agoMs: number): string {
  if (agoMs === 0) return 'now'
  return agoMs < 60_000 ? `−${agoMs / 1000} s` : `−${agoMs / 60_000} min`
}

export interface ChartOptions {
  /** The right end of the time axis: when the page is drawn. */
  now: Date
  /** The time each sample covers (the one before it). */
  intervalMs: number
  width?: number
  height?: number
}

/**
 * The samples as a small inline SVG line chart: hit ratio (0–100 %) over time, the time axis
 * ending at `now` and labelled in time before it (the page says when that is). Drawn on the
 * server: no script, no chart library, nothing fetched by the browser.
 */
export function hitRatioChart (samples: readonly HitRatioSample[], { now, intervalMs, width = 480, height = 200 }: ChartOptions): string {
  const left = 48
  const right = 14
  const top = 10
  const bottom = 30
  const end = now.getTime()
  // Each sample covers the interval before it: the axis starts where the first one's does.
  const start = Math.min(end - intervalMs, (samples[0]?.at.getTime() ?? end) - intervalMs)
  const x = (ms: number) => (left + (ms - start) / (end - start) * (width - left - right)).toFixed(1)
  const y = (ratio: number) => (height - bottom - ratio * (height - top - bottom)).toFixed(1)
  const yAxis = [0, 0.5, 1].map((r) =>
    `<line x1="${left}" x2="${width - right}" y1="${y(r)}" y2="${y(r)}" class="grid"/>` +
    `<text x="${left - 6}" y="${Number(y(r)) + 4}" text-anchor="end">${r * 100}%</text>`).join('')
  const step = TICK_STEPS_MS.find((ms) => (end - start) / ms <= 5) ?? TICK_STEPS_MS.at(-1)!
  let xAxis = `<line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}" class="axis"/>`
  for (let ago = 0; end - ago >= start; ago += step) {
    const at = x(end - ago)
    const anchor = ago === 0 ? 'end' : 'middle'
    xAxis += `<line x1="${at}" x2="${at}" y1="${height - bottom}" y2="${height - bottom + 4}" class="axis"/>` +
      `<text x="${at}" y="${height - bottom + 18}" text-anchor="${anchor}">${tickLabel(ago)}</text>`
  }
  const plotted = samples.filter((s): s is { at: Date, hitRatio: number } => s.hitRatio !== null)
  const line = plotted.length === 0
    ? `<text x="${(left + width - right) / 2}" y="${(top + height - bottom) / 2}" text-anchor="middle">${samples.length === 0 ? 'no samples yet' : 'no reads yet'}</text>`
    : `<polyline points="${plotted.map((s) => `${x(s.at.getTime())},${y(s.hitRatio)}`).join(' ')}" class="ratio"/>` +
      plotted.map((s) => `<circle cx="${x(s.at.getTime())}" cy="${y(s.hitRatio)}" r="3" class="ratio"/>`).join('')
  const label = samples.length === 0 ? 'Cache hit ratio: no samples yet' : `Cache hit ratio over the last ${describeSpan(samples.length * intervalMs)}`
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${label}">${yAxis}${xAxis}${line}</svg>`
}
