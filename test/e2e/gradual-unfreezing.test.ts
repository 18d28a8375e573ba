import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, Rig } from './rig.js';

/** mnist-tiny with two unfreeze → fine-tune phases: conv3 first, then down to conv2. */
const GRADUAL = `
name: mnist-tiny-gradual
seed: 1
params: { per_class: 20, size: 28 }
stages:
  data: { uses: load-data, with: { source: mnist, limit_per_class: "\${params.per_class}" } }
  prep:
    uses: preprocess
    inputs: { dataset: data.dataset }
    with: { size: "\${params.size}", split: { train: 0.7, val: 0.15, test: 0.15 } }
  features: { uses: extract-features, inputs: { dataset: prep.dataset }, with: { base: mnist_cnn } }
  head:
    uses: train-head
    inputs: { features: features.features }
    with: { layers: [{ dense: 32, activation: relu }], epochs: 3, lr: 0.003 }
  unfreeze_top: { uses: unfreeze, inputs: { model: head.model }, with: { from_layer: conv3 } }
  finetune_top:
    uses: fine-tune
    inputs: { model: unfreeze_top.model, dataset: prep.dataset }
    with: { lr: 0.0005, epochs: 1 }
  unfreeze_more: { uses: unfreeze, inputs: { model: finetune_top.model }, with: { from_layer: conv2 } }
  finetune_more:
    uses: fine-tune
    inputs: { model: unfreeze_more.model, dataset: prep.dataset }
    with: { lr: 0.0002, epochs: 1 }
  eval: { uses: evaluate, inputs: { model: finetune_more.model, dataset: prep.dataset }, with: { split: test } }
`;

/** The layers of packages/steps/models/mnist-cnn that can start a trainable part, bottom to top. */
const CONV_LAYERS = ['conv1', 'conv2', 'conv3'];

/** The layer a fine-tune stage's log says its cached frozen part ends below. */
function boundaryLayer(stdout: string, stage: string): string {
  const line = new RegExp(`^\\[${stage}\\] cached the frozen part's output below (\\S+) \\(`, 'm').exec(stdout);
  if (!line) throw new Error(`no boundary line from ${stage} in:\n${stdout}`);
  return line[1]!;
}

/** The training phases a stage's model records, from the directory the cache materialized for its consumer. */
function phases(rig: Rig, stage: string): string[] {
  const hash = rig.lockfile().stages[stage]!.outputs['model']!.hash;
  const model = JSON.parse(readFileSync(join(rig.dir, '.headstart/cache/trees', hash, 'model.json'), 'utf8')) as { userDefinedMetadata: { headstart: { history: { phase: string }[] } } };
  return model.userDefinedMetadata.headstart.history.map((h) => h.phase);
}

describe('gradual unfreezing as chained unfreeze → fine-tune phases', () => {
  it('each phase caches its own, lower, boundary; changing the second phase leaves the first cached', { timeout: 120_000 }, async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', GRADUAL);
    const first = await rig.run('run');
    expect(first.exitCode, first.stderr).toBe(0);
    for (const stage of ['unfreeze_top', 'finetune_top', 'unfreeze_more', 'finetune_more', 'eval']) expect(first.stdout).toContain(`✓ ${stage}: ran`);
    const [top, more] = [boundaryLayer(first.stdout, 'finetune_top'), boundaryLayer(first.stdout, 'finetune_more')];
    expect([top, more]).toEqual(['conv3', 'conv2']);
    expect(CONV_LAYERS.indexOf(more)).toBeLessThan(CONV_LAYERS.indexOf(top));
    expect(phases(rig, 'finetune_more')).toEqual(['head', 'fine-tune', 'fine-tune']);

    const changed = await rig.runJson('--set', 'finetune_more.lr=0.0003');
    expect(changed.exitCode, changed.stderr).toBe(0);
    expect(changed.statuses).toEqual({
      data: 'cached', prep: 'cached', features: 'cached', head: 'cached',
      unfreeze_top: 'cached', finetune_top: 'cached', unfreeze_more: 'cached', finetune_more: 'ran', eval: 'ran',
    });
  });

  it('pipelines/fashion-mnist-gradual.yaml chains its two phases', async () => {
    const rig = new Rig();
    copyFileSync(join(REPO, 'pipelines/fashion-mnist-gradual.yaml'), join(rig.dir, 'headstart.yaml'));
    const plan = await rig.run('run', '--dry-run');
    expect(plan.exitCode, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('> unfreeze_10: will run (upstream finetune_13 will run)');
    expect(plan.stdout).toContain('> eval: will run (upstream finetune_10 will run)');
  });
});
