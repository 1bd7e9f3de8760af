/**
 * A PNG decoder for screenshots (8-bit RGB or RGBA, non-interlaced: what Chromium writes), on
 * node:zlib, and the statistics that tell a rendered page from a blank one.
 */
import assert from 'node:assert/strict'
import {inflateSync} from 'node:zlib'

export function decodePng(png: Buffer): {width: number; height: number; channels: number; pixels: Uint8Array} {
  assert.equal(png.toString('latin1', 1, 4), 'PNG')
  let at = 8
  let width = 0
  let height = 0
  let channels = 0
  const idat: Buffer[] = []
  while (at < png.length) {
    const length = png.readUInt32BE(at)
    const type = png.toString('latin1', at + 4, at + 8)
    const data = png.subarray(at + 8, at + 8 + length)
    if (type === 'IHDR') {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      assert.equal(data[8], 8, 'bit depth 8')
      assert.ok(data[9] === 2 || data[9] === 6, `colour type ${data[9]}`)
      assert.equal(data[12], 0, 'not interlaced')
      channels = data[9] === 6 ? 4 : 3
    } else if (type === 'IDAT') idat.push(data)
    at += 12 + length
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const pixels = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[y * stride + x - channels] : 0
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0
      let predictor = 0
      if (filter === 1) predictor = a
      else if (filter === 2) predictor = b
      else if (filter === 3) predictor = (a + b) >> 1
      else if (filter === 4) {
        const p = a + b - c
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)]
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
      } else assert.equal(filter, 0, `PNG filter ${filter}`)
      pixels[y * stride + x] = (line[x] + predictor) & 0xff
    }
  }
  return {width, height, channels, pixels}
}

/** luminance standard deviation and the share of pixels that are not near-white */
export function pixelStats(png: Buffer): {width: number; height: number; sd: number; inked: number; colours: number} {
  const {width, height, channels, pixels} = decodePng(png)
  let sum = 0
  let sumSq = 0
  let inked = 0
  const colours = new Set<number>()
  const n = width * height
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [pixels[i * channels], pixels[i * channels + 1], pixels[i * channels + 2]]
    const y = 0.299 * r + 0.587 * g + 0.114 * b
    sum += y
    sumSq += y * y
    if (y < 240) inked++
    if (colours.size < 5000) colours.add((r << 16) | (g << 8) | b)
  }
  const mean = sum / n
  return {width, height, sd: Math.sqrt(Math.max(0, sumSq / n - mean * mean)), inked: inked / n, colours: colours.size}
}
