/** One CSV field (RFC 4180): quoted, with its quotes doubled, when it holds a quote, a comma or a line break. */
export function csvCell(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}
