import {geometryFromAffine} from '../../src/io/nifti-writer.js'

/** A NIfTI geometry with 1 mm voxels and no rotation, for masks whose orientation does not matter. */
export const IDENTITY_GEOMETRY = geometryFromAffine([
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 1, 0],
  [0, 0, 0, 1],
] as never)
