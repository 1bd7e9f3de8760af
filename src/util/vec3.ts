/** Three numbers along the x, y, z axes: a grid's shape, a voxel size, a patch, a point or a stride. */
export type Vec3 = [number, number, number]
