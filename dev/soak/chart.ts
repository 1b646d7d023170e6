/**
 * A self-contained SVG of a soak run: one small panel per series over time, so a person can see at a
 * glance whether memory, handles, event-loop delay or lateness grew. No dependencies; plain text out.
 */

export interface Series {
  title: string
  unit: string
  points: Array<[number, number]>
  /** A horizontal line the series must stay under, drawn in red. */
  limit?: number
}

const PANEL_WIDTH = 520
const PANEL_HEIGHT = 120
const MARGIN = { left: 64, right: 16, top: 28, bottom: 24 }

function escapeXml (text: string): string {
  return text.replace(/[<>&"]/g, character => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[character] ?? character)
}

function panel (series: Series, offsetY: number): string {
  const xs = series.points.map(([x]) => x)
  const ys = series.points.map(([, y]) => y)
  const maxX = Math.max(1, ...xs)
  const maxY = Math.max(1e-9, ...ys, series.limit ?? 0) * 1.1
  const minY = Math.min(0, ...ys)
  const plotWidth = PANEL_WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (value: number): number => MARGIN.left + (value / maxX) * plotWidth
  const y = (value: number): number => offsetY + MARGIN.top + plotHeight - ((value - minY) / (maxY - minY)) * plotHeight
  const path = series.points.map(([px, py], index) => `${index === 0 ? 'M' : 'L'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ')
  const limit = series.limit === undefined
    ? ''
    : `<line x1="${MARGIN.left}" x2="${PANEL_WIDTH - MARGIN.right}" y1="${y(series.limit).toFixed(1)}" y2="${y(series.limit).toFixed(1)}" stroke="#c62828" stroke-dasharray="4 3"/>`
  const last = ys.at(-1)
  return [
    `<text x="${MARGIN.left}" y="${offsetY + 18}" font-size="13" font-weight="bold">${escapeXml(series.title)}${last === undefined ? '' : ` (last ${last.toFixed(1)} ${escapeXml(series.unit)})`}</text>`,
    `<rect x="${MARGIN.left}" y="${offsetY + MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="#fafafa" stroke="#ccc"/>`,
    `<text x="${MARGIN.left - 6}" y="${offsetY + MARGIN.top + 10}" font-size="10" text-anchor="end">${maxY.toFixed(1)}</text>`,
    `<text x="${MARGIN.left - 6}" y="${offsetY + MARGIN.top + plotHeight}" font-size="10" text-anchor="end">${minY.toFixed(1)}</text>`,
    `<text x="${PANEL_WIDTH - MARGIN.right}" y="${offsetY + PANEL_HEIGHT - 6}" font-size="10" text-anchor="end">${maxX.toFixed(0)} s</text>`,
    limit,
    `<path d="${path}" fill="none" stroke="#1565c0" stroke-width="1.5"/>`
  ].join('\n')
}

export function soakChart (title: string, series: Series[]): string {
  const height = 36 + series.length * PANEL_HEIGHT
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PANEL_WIDTH}" height="${height}" font-family="sans-serif">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="8" y="22" font-size="15">${escapeXml(title)}</text>`,
    ...series.map((item, index) => panel(item, 30 + index * PANEL_HEIGHT)),
    '</svg>'
  ].join('\n')
}
