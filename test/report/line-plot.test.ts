import {test} from 'node:test'
import assert from 'node:assert/strict'
import {linePlotSvg, niceTicks} from '../../src/report/line-plot.js'

test('niceTicks uses 1/2/5 steps and covers the data range', () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1])
  assert.deepEqual(niceTicks(8, 64), [0, 20, 40, 60, 80])
  // range 0.12 / 5 = 0.024 → the next 1/2/5 step is 0.05
  assert.deepEqual(niceTicks(0.71, 0.83), [0.7, 0.75, 0.8, 0.85])
  // a constant series still gets a non-degenerate axis around its value
  const flat = niceTicks(5, 5)
  assert.ok(flat[0] < 5 && flat[flat.length - 1] > 5)
})

test('linePlotSvg draws axes, labels, legend, one polyline and a marker per finite point', () => {
  const svg = linePlotSvg({
    title: 'Dice vs queries <N>',
    xLabel: 'model.queries',
    yLabel: 'mean Dice',
    series: [
      {name: 'tau=0.1', x: [8, 16, 32, 64], y: [0.7, 0.75, 0.8, 0.78]},
      {name: 'tau=0.5', x: [8, 16, 32, 64], y: [0.72, NaN, 0.81, 0.79]},
    ],
  })
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
  assert.ok(svg.trimEnd().endsWith('</svg>'))
  assert.ok(svg.includes('Dice vs queries &lt;N&gt;'), 'title is XML-escaped')
  assert.ok(svg.includes('>model.queries<') && svg.includes('>mean Dice<'))
  assert.ok(svg.includes('>tau=0.1<') && svg.includes('>tau=0.5<'), 'legend names each series')
  // series 1: one polyline of 4 points; series 2: the NaN point is skipped, the line joins the other 3
  const polylines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1].split(' ').length)
  assert.deepEqual(polylines, [4, 3])
  // markers: 4 + 3 finite points in the series, + 2 legend markers
  assert.equal([...svg.matchAll(/<circle /g)].length, 4 + 3 + 2)
  assert.ok(!svg.includes('NaN'), 'no NaN coordinates are written')
})

test('linePlotSvg maps data to pixels linearly inside the plot area', () => {
  const svg = linePlotSvg({title: 't', xLabel: 'x', yLabel: 'y', width: 400, height: 300, series: [{name: 's', x: [0, 1], y: [0, 1]}]})
  const pts = /<polyline [^>]*points="([^"]*)"/
    .exec(svg)![1]
    .split(' ')
    .map((p) => p.split(',').map(Number))
  // x from the left margin to the right edge of the plot area; y increasing upwards
  assert.ok(pts[0][0] < pts[1][0])
  assert.ok(pts[0][1] > pts[1][1])
  assert.equal(pts[0][0], 70)
  assert.equal(pts[0][1], 300 - 55)
})
