import {z} from 'zod'

/** Every config object is strict: a misspelt key is an error, never silently ignored. */
export function section<T extends z.ZodRawShape>(shape: T) {
  return z.object(shape).strict()
}

export const positiveInt = z.number().int().positive()
export const nonNegativeInt = z.number().int().nonnegative()
export const probability = z.number().min(0).max(1)
/** [x, y, z] triple, e.g. a spacing in mm or a patch size in voxels (RAS axis order). */
export const triple = <T extends z.ZodTypeAny>(item: T) => z.tuple([item, item, item])
