/**
 * Predictions on the preprocessed grid brought back to the original image's grid and geometry,
 * through the case header the cache keeps (nearest neighbour through world space).
 */
import {writeNifti} from '../io/nifti-writer.js'
import type {CaseHeader} from './preprocess.js'
import {labelsToGrid} from './resample.js'

/** A label map on the preprocessed grid, brought back to the original image grid (nearest neighbour through world space). */
export function toOriginalGrid(header: CaseHeader, labelMap: Uint8Array): Uint8Array {
  const n = header.shape[0] * header.shape[1] * header.shape[2]
  if (labelMap.length !== n) throw new Error(`label map has ${labelMap.length} voxels, case ${header.id} has ${n}`)
  return labelsToGrid(labelMap, header.shape, header.affine, header.original.shape, header.original.affine)
}

/** Writes a prediction on the original grid with the original sform/qform and codes; returns the path. */
export function restoreToOriginal(header: CaseHeader, labelMap: Uint8Array, outFile: string): string {
  return writeOriginalGrid(header, toOriginalGrid(header, labelMap), outFile)
}

/** Writes a label map that is already on the original grid (toOriginalGrid) with the original geometry. */
export function writeOriginalGrid(header: CaseHeader, original: Uint8Array, outFile: string): string {
  return writeNifti(outFile, {
    shape: header.original.shape,
    data: original,
    geometry: header.original.geometry,
    description: `sipl prediction for ${header.id}`,
  })
}
