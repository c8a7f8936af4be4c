/** One minute of a namespace (or all of them), summed over every instance. */
export interface MinutePoint {
  /** The minute's start. */
  at: Date
  hits: number
  misses: number
  errors: number
}

const fmt = (n: number): string => n.toFixed(1)
const clock = (at: Date): string => at.toISOString().slice(11, 16)

/** Minutes between time-axis ticks: the smallest that gives at most six intervals. */
const TICK_MINUTES = [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360]

/**
 * Reads per minute as bars and the hit ratio as a line, over a time axis labelled in UTC clock
 * time: a static SVG made on the server, with no script and nothing fetched. Minutes without
 * reads leave a gap in the line rather than a drop to 0 %.
 */
export function minutesChart (points: readonly MinutePoint[], { width = 640, height = 220 }: { width?: number, height?: number } = {}): string {
  const [left, right, top, bottom] = [48, 48, 10, 30]
  if (points.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="no minutes yet"></svg>`
  const start = points[0]!.at.getTime()
  const end = points.at(-1)!.at.getTime() + 60_000
  const plotW = width - left - right
  const plotH = height - top - bottom
  const x = (ms: number): number => left + (ms - start) / (end - start) * plotW
  const yRatio = (ratio: number): number => top + (1 - ratio) * plotH
  const maxReads = Math.max(1, ...points.map((p) => p.hits + p.misses))
  const yReads = (reads: number): number => top + (1 - reads / maxReads) * plotH
  let svg = ''
  for (const r of [0, 0.5, 1]) {
    svg += `<line x1="${left}" x2="${width - right}" y1="${fmt(yRatio(r))}" y2="${fmt(yRatio(r))}" class="grid"/>` +
      `<text x="${left - 6}" y="${fmt(yRatio(r) + 4)}" text-anchor="end">${r * 100}%</text>`
  }
  svg += `<text x="${width - right + 6}" y="${top + 4}" text-anchor="start">${maxReads}</text>` +
    `<text x="${width - right + 6}" y="${fmt(yReads(0) + 4)}" text-anchor="start">0</text>`
  const barW = Math.max(1, plotW / points.length - 1)
  for (const p of points) {
    const reads = p.hits + p.misses
    if (reads > 0) svg += `<rect x="${fmt(x(p.at.getTime()))}" y="${fmt(yReads(reads))}" width="${fmt(barW)}" height="${fmt(yReads(0) - yReads(reads))}" class="reads"><title>${clock(p.at)} UTC: ${reads} reads, ${p.errors} errors</title></rect>`
  }
  // The line breaks where a minute had no reads.
  let segment: string[] = []
  const segments: string[][] = []
  for (const p of points) {
    const reads = p.hits + p.misses
    if (reads === 0) {
      if (segment.length > 0) segments.push(segment)
      segment = []
    } else {
      segment.push(`${fmt(x(p.at.getTime() + 30_000))},${fmt(yRatio(p.hits / reads))}`)
    }
  }
  if (segment.length > 0) segments.push(segment)
  for (const s of segments) svg += s.length === 1 ? `<circle cx="${s[0]!.split(',')[0]}" cy="${s[0]!.split(',')[1]}" r="2.5" class="ratio"/>` : `<polyline points="${s.join(' ')}" class="ratio"/>`
  const minutes = (end - start) / 60_000
  const step = TICK_MINUTES.find((m) => minutes / m <= 6) ?? TICK_MINUTES.at(-1)!
  svg += `<line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}" class="axis"/>`
  const firstTick = Math.ceil(start / (step * 60_000)) * step * 60_000
  for (let at = firstTick; at <= end; at += step * 60_000) {
    svg += `<line x1="${fmt(x(at))}" x2="${fmt(x(at))}" y1="${height - bottom}" y2="${height - bottom + 4}" class="axis"/>` +
      `<text x="${fmt(x(at))}" y="${height - bottom + 18}" text-anchor="middle">${clock(new Date(at))}</text>`
  }
  const label = `Hit ratio (line) and reads per minute (bars), ${clock(new Date(start))} to ${clock(new Date(end))} UTC`
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" role="img" aria-label="${label}">${svg}</svg>`
}
