/**
 * --set overrides that shrink experiments/demo.yaml to a few seconds per run on 2 CPU cores while
 * keeping the demo's model structure: 3 backbone stages (max stride 16) so a 16³ patch works,
 * the SMG at strides 16/8/4, tiny phantoms.
 */
export const TINY = [
  'data.synthetic.cases=4',
  'data.synthetic.shape=[32,32,24]',
  'data.splitFractions=[0.5,0.25,0.25]',
  'preprocess.patch=[16,16,16]',
  'model.backbone.widths=[8,16,32]',
  'model.backbone.depths=[1,1,1]',
  'smg.scales=[16,8,4]',
  'train.samplesPerVolume=1',
  'train.checkpointEvery=1',
  'train.valEvery=1',
  'train.schedule.warmupEpochs=1',
].flatMap((s) => ['--set', s])

/** `sipl train` arguments for a tiny demo run into `run`, with more `--set` overrides. */
export const tinyTrainArgs = (run: string, sets: string[] = []): string[] => [
  'train',
  '-c',
  'experiments/demo.yaml',
  ...TINY,
  ...sets.flatMap((s) => ['--set', s]),
  '--out',
  run,
]

/** `--set` arguments for each `key=value`. */
export const sets = (...overrides: string[]) => overrides.flatMap((s) => ['--set', s])
