import {Args} from '@oclif/core'
import {BaseCommand} from '../src/cli/base-command.js'
import {formatInspect, inspectFiles, type InspectFailure, type InspectRecord} from '../src/io/nifti-inspect.js'

export default class Inspect extends BaseCommand<typeof Inspect> {
  static override summary = 'Show what NIfTI files hold: shape, datatype, zooms, affine, codes, scaling, orientation, value range'
  static override description =
    'Reads .nii, .nii.gz and .hdr/.img(.gz) files (NIfTI-1 and -2) the way nibabel does: the sform if its code > 0, else the qform, ' +
    'else the pixdim fallback; scl_slope/scl_inter applied (slope 0 or NaN = none); statistics over the scaled values with NaN ignored ' +
    'and counted. A file that cannot be read gets a one-line error; the others are still reported, and the exit code is 2.'
  static override examples = [
    '<%= config.bin %> inspect data/demo/imagesTr/case_000.nii.gz',
    '<%= config.bin %> inspect img/*.nii.gz --json',
  ]
  static override strict = false
  static override args = {file: Args.string({description: 'NIfTI file(s)', required: true})}

  async run(): Promise<(InspectRecord | InspectFailure)[]> {
    const {argv} = await this.parse(Inspect)
    const results = inspectFiles(argv as string[])
    if (!this.jsonEnabled()) {
      for (const r of results) {
        if ('error' in r) process.stderr.write(`Error: ${r.error}\n`)
        else this.log(formatInspect(r))
      }
    }
    if (results.some((r) => 'error' in r)) process.exitCode = 2
    return results
  }
}
