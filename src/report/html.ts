/**
 * The pieces of a self-contained HTML page: escaped text, tables, images as data: URIs, one
 * stylesheet inline. The page's Content-Security-Policy allows nothing but inline styles and
 * data: images, so even a stray reference to a remote file could not make a request: the page
 * opens offline, from a USB stick or an e-mail attachment, exactly as it was written.
 */
import {escapeXml} from './line-plot.js'

/** XML's five escapes are HTML5's too */
export const escapeHtml = escapeXml

export interface HtmlTable {
  header: string[]
  rows: string[][]
  caption?: string
  /** columns from this index on are numbers: right-aligned (default 1) */
  numericFrom?: number
}

export function tableHtml(t: HtmlTable): string {
  const from = t.numericFrom ?? 1
  const cell = (tag: 'th' | 'td', text: string, i: number) => `<${tag}${i >= from ? ' class="num"' : ''}>${escapeHtml(text)}</${tag}>`
  return [
    '<div class="table-wrap"><table>',
    t.caption ? `<caption>${escapeHtml(t.caption)}</caption>` : '',
    `<thead><tr>${t.header.map((h, i) => cell('th', h, i)).join('')}</tr></thead>`,
    `<tbody>${t.rows.map((r) => `<tr>${r.map((c, i) => cell('td', c, i)).join('')}</tr>`).join('\n')}</tbody>`,
    '</table></div>',
  ].join('\n')
}

export function imageHtml(bytes: Uint8Array, mime: 'image/png' | 'image/svg+xml', alt: string, caption?: string): string {
  const src = `data:${mime};base64,${Buffer.from(bytes).toString('base64')}`
  return `<figure><img src="${src}" alt="${escapeHtml(alt)}">${caption ? `<figcaption>${escapeHtml(caption)}</figcaption>` : ''}</figure>`
}

export const preHtml = (text: string): string => `<pre>${escapeHtml(text)}</pre>`

/** key → value pairs as a two-column list */
export function factsHtml(facts: [string, string][]): string {
  return `<dl class="facts">${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('')}</dl>`
}

export interface Section {
  id: string
  title: string
  /** HTML, already escaped */
  body: string
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1b1b1b; background: #fff; margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
.meta { color: #555; margin: 0 0 12px; }
nav ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a, a { color: #0b5cad; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: #444; padding: 0 0 6px; font-style: italic; }
th, td { border: 1px solid #d6d6d6; padding: 4px 9px; text-align: left; white-space: nowrap; }
th { background: #f1f4f8; }
tbody tr:nth-child(even) { background: #fafafa; }
.num { text-align: right; }
figure { margin: 8px 0 18px; display: inline-block; vertical-align: top; margin-right: 16px; }
figure img { max-width: 100%; border: 1px solid #e2e2e2; image-rendering: pixelated; }
figcaption { color: #444; font-size: 13px; }
pre { background: #f6f8fa; border: 1px solid #e2e2e2; padding: 10px; overflow-x: auto; font-size: 12.5px; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 8px 0; }
dl.facts dt { color: #555; }
dl.facts dd { margin: 0; }
.note { color: #555; }
`

export function pageHtml(title: string, subtitle: string, sections: Section[]): string {
  const nav = sections.map((s) => `<li><a href="#${s.id}">${escapeHtml(s.title)}</a></li>`).join('')
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(title)}</h1><p class="meta">${escapeHtml(subtitle)}</p></header>
<nav><ul>${nav}</ul></nav>
${sections.map((s) => `<section id="${s.id}">\n<h2>${escapeHtml(s.title)}</h2>\n${s.body}\n</section>`).join('\n')}
</body>
</html>
`
}
