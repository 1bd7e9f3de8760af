/**
 * Per-epoch metrics: `metrics.jsonl` (one JSON object per epoch, the source of truth),
 * `metrics.csv` (the same rows for spreadsheets) and the training-curve figures
 * (`training-curve.svg`: losses; `validation-dice.svg`: mean val Dice), rewritten every epoch
 * so that an interrupted run still has them.
 */
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {linePlotSvg} from '../report/line-plot.js'
import type {RunPaths} from '../run/run-dir.js'
import {writeFileAtomic} from '../util/atomic.js'

export interface EpochMetrics {
  epoch: number
  step: number
  lr: number
  tau: number
  loss: number
  segLoss: number
  auxLoss: number
  gradNorm: number
  valDice: number | null
  valPerClass?: Record<string, number>
  seconds: number
}

const CSV_COLUMNS: (keyof EpochMetrics)[] = ['epoch', 'step', 'lr', 'tau', 'loss', 'segLoss', 'auxLoss', 'gradNorm', 'valDice', 'seconds']

export function readMetrics(paths: RunPaths): EpochMetrics[] {
  if (!existsSync(paths.metricsJsonl)) return []
  return readFileSync(paths.metricsJsonl, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as EpochMetrics]
      } catch {
        // a line cut by a kill is dropped; the epoch is redone on resume
        return []
      }
    })
}

function writeAll(paths: RunPaths, rows: EpochMetrics[]): void {
  writeFileAtomic(paths.metricsJsonl, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length > 0 ? '\n' : ''))
  const csv = [
    CSV_COLUMNS.join(','),
    ...rows.map((r) => CSV_COLUMNS.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))).join(',')),
  ]
  writeFileAtomic(paths.metricsCsv, csv.join('\n') + '\n')
}

/** Keeps the rows of epochs ≤ `epochs` (the checkpoint a run resumes from) and drops the rest. */
export function rewriteMetrics(paths: RunPaths, epochs: number): void {
  writeAll(
    paths,
    readMetrics(paths).filter((r) => r.epoch <= epochs),
  )
}

export function appendMetrics(paths: RunPaths, row: EpochMetrics): void {
  writeAll(paths, [...readMetrics(paths).filter((r) => r.epoch < row.epoch), row])
}

/** total, L_seg and Σ L_aux per epoch (training-curve.svg, and the report page) */
export function lossCurveSvg(rows: EpochMetrics[], size: {width?: number; height?: number} = {}): string {
  const x = rows.map((r) => r.epoch)
  return linePlotSvg({
    ...size,
    title: 'Training loss',
    xLabel: 'epoch',
    yLabel: 'loss (mean over the epoch)',
    series: [
      {name: 'total', x, y: rows.map((r) => r.loss)},
      {name: 'L_seg', x, y: rows.map((r) => r.segLoss)},
      {name: 'Σ L_aux', x, y: rows.map((r) => r.auxLoss)},
    ],
  })
}

export function writeTrainingCurves(paths: RunPaths): void {
  const rows = readMetrics(paths)
  writeFileAtomic(paths.curve, lossCurveSvg(rows))
  const val = rows.filter((r) => r.valDice !== null)
  if (val.length > 0)
    writeFileAtomic(
      join(paths.dir, 'validation-dice.svg'),
      linePlotSvg({
        title: 'Validation mean Dice',
        xLabel: 'epoch',
        yLabel: 'Dice',
        series: [{name: 'val Dice', x: val.map((r) => r.epoch), y: val.map((r) => r.valDice as number)}],
      }),
    )
}
