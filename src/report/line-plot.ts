/**
 * A standalone SVG line plot with no dependencies: axes with "nice" ticks, axis labels, a legend,
 * one polyline plus point markers per series. Used for the sweep figure (paper Fig. 5: Dice against
 * one swept parameter) and for training curves. SVG, not PNG, because it needs no native canvas and
 * opens in every browser and in Inkscape/Illustrator for the paper figure.
 *
 * Non-finite points (NaN, ±Infinity: a failed trial, an epoch without validation) are skipped: the
 * line joins the finite points around them and no marker is drawn there, so a missing value never
 * shows as a drop to zero, and a validation curve measured every k epochs is still one line.
 */

export interface LineSeries {
  name: string
  x: number[]
  y: number[]
}

export interface LinePlotOptions {
  title: string
  xLabel: string
  yLabel: string
  series: LineSeries[]
  /** pixels; default 640 × 400 */
  width?: number
  height?: number
}

// Colour-blind-safe palette (Okabe–Ito), repeated when there are more series.
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000']

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

/** Tick positions covering [lo, hi] with a 1/2/5 × 10^k step, about `target` of them. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return []
  if (hi < lo) [lo, hi] = [hi, lo]
  if (hi === lo) {
    // a single value still gets an axis around it
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1
    lo -= pad
    hi += pad
  }
  const raw = (hi - lo) / Math.max(1, target)
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude
  const first = Math.floor(lo / step + 1e-9) * step
  const ticks: number[] = []
  // the last tick is the first one at or above hi, so every point lies inside the axis range
  for (let k = 0; ; k++) {
    const v = Number((first + k * step).toPrecision(12))
    ticks.push(v)
    if (v >= hi - step * 1e-9) break
  }
  return ticks
}

function formatTick(value: number): string {
  if (value === 0) return '0'
  const abs = Math.abs(value)
  if (abs >= 1e5 || abs < 1e-3) return value.toExponential(1)
  return String(Number(value.toPrecision(6)))
}

export function linePlotSvg(opts: LinePlotOptions): string {
  const width = opts.width ?? 640
  const height = opts.height ?? 400
  const margin = {left: 70, right: 20, top: 40, bottom: 55}
  const legendWidth = opts.series.length > 0 ? 20 + 8 * Math.min(28, Math.max(...opts.series.map((s) => s.name.length))) + 30 : 0
  const plotLeft = margin.left
  const plotRight = width - margin.right - legendWidth
  const plotTop = margin.top
  const plotBottom = height - margin.bottom

  const points = opts.series.flatMap((s) =>
    s.x.map((x, i) => [x, s.y[i]] as const).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  )
  const xs = points.map(([x]) => x)
  const ys = points.map(([, y]) => y)
  const xTicks = points.length > 0 ? niceTicks(Math.min(...xs), Math.max(...xs)) : [0, 1]
  const yTicks = points.length > 0 ? niceTicks(Math.min(...ys), Math.max(...ys)) : [0, 1]
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]]
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]]
  const px = (x: number): number => plotLeft + ((x - x0) / (x1 - x0 || 1)) * (plotRight - plotLeft)
  const py = (y: number): number => plotBottom - ((y - y0) / (y1 - y0 || 1)) * (plotBottom - plotTop)
  const r = (v: number): string => v.toFixed(2)

  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  )
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`)
  out.push(`<text x="${r((plotLeft + plotRight) / 2)}" y="22" text-anchor="middle" font-size="15">${escapeXml(opts.title)}</text>`)

  // grid lines and ticks
  out.push('<g class="x-ticks" stroke="#ddd">')
  for (const t of xTicks) out.push(`<line x1="${r(px(t))}" y1="${plotTop}" x2="${r(px(t))}" y2="${plotBottom}"/>`)
  out.push('</g><g class="y-ticks" stroke="#ddd">')
  for (const t of yTicks) out.push(`<line x1="${plotLeft}" y1="${r(py(t))}" x2="${plotRight}" y2="${r(py(t))}"/>`)
  out.push('</g>')
  out.push('<g class="tick-labels" fill="#333">')
  for (const t of xTicks) out.push(`<text x="${r(px(t))}" y="${plotBottom + 16}" text-anchor="middle">${escapeXml(formatTick(t))}</text>`)
  for (const t of yTicks) out.push(`<text x="${plotLeft - 6}" y="${r(py(t) + 4)}" text-anchor="end">${escapeXml(formatTick(t))}</text>`)
  out.push('</g>')

  // axes
  out.push(
    `<g class="axes" stroke="#000" stroke-width="1"><line x1="${plotLeft}" y1="${plotBottom}" x2="${plotRight}" y2="${plotBottom}"/><line x1="${plotLeft}" y1="${plotTop}" x2="${plotLeft}" y2="${plotBottom}"/></g>`,
  )
  out.push(
    `<text class="x-label" x="${r((plotLeft + plotRight) / 2)}" y="${height - 14}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`,
  )
  out.push(
    `<text class="y-label" x="18" y="${r((plotTop + plotBottom) / 2)}" text-anchor="middle" transform="rotate(-90 18 ${r((plotTop + plotBottom) / 2)})">${escapeXml(opts.yLabel)}</text>`,
  )

  // series: one polyline through the finite points, plus a marker on each
  opts.series.forEach((s, index) => {
    const colour = PALETTE[index % PALETTE.length]
    out.push(`<g class="series" data-name="${escapeXml(s.name)}" stroke="${colour}" fill="${colour}">`)
    const n = Math.min(s.x.length, s.y.length)
    const finite: string[] = []
    for (let i = 0; i < n; i++) if (Number.isFinite(s.x[i]) && Number.isFinite(s.y[i])) finite.push(`${r(px(s.x[i]))},${r(py(s.y[i]))}`)
    if (finite.length > 1) out.push(`<polyline fill="none" stroke-width="2" points="${finite.join(' ')}"/>`)
    for (let i = 0; i < n; i++) {
      const [x, y] = [s.x[i], s.y[i]]
      if (Number.isFinite(x) && Number.isFinite(y)) out.push(`<circle cx="${r(px(x))}" cy="${r(py(y))}" r="3.5"/>`)
    }
    out.push('</g>')
  })

  // legend, right of the plot area
  if (opts.series.length > 0) {
    out.push('<g class="legend">')
    opts.series.forEach((s, index) => {
      const colour = PALETTE[index % PALETTE.length]
      const y = plotTop + 8 + index * 18
      const lx = plotRight + 16
      out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 20}" y2="${y}" stroke="${colour}" stroke-width="2"/>`)
      out.push(`<circle cx="${lx + 10}" cy="${y}" r="3.5" fill="${colour}"/>`)
      out.push(`<text x="${lx + 26}" y="${y + 4}">${escapeXml(s.name)}</text>`)
    })
    out.push('</g>')
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}
