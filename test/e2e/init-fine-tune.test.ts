import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Rig } from './rig.js';

const RECIPE = ['data', 'prep', 'features', 'head', 'unfreeze', 'find', 'finetune', 'eval'];

/** A project with MNIST digits as a PNG folder (train/ and test/, `perClass` per class) and `headstart init --fine-tune` run on it. */
async function initialized(perClass: number): Promise<Rig> {
  const rig = new Rig();
  expect((await rig.run('data', 'export', 'mnist', '--out', 'data', '--per-class', String(perClass))).exitCode).toBe(0);
  const init = await rig.run('init', '--fine-tune');
  expect(init.exitCode, init.stderr).toBe(0);
  expect(init.stdout).toContain('next: headstart run headstart.yaml');
  return rig;
}

describe('headstart init --fine-tune', () => {
  it('writes the whole recipe as commented YAML that a dry run accepts and that runs', { timeout: 120_000 }, async () => {
    const rig = await initialized(10);
    const text = rig.read('headstart.yaml');
    const pipeline = parse(text) as { stages: Record<string, { uses: string; inputs?: Record<string, string>; with?: Record<string, unknown> }> };
    expect(Object.keys(pipeline.stages)).toEqual(RECIPE);
    expect(pipeline.stages['find']!.uses).toBe('lr-find');
    expect(pipeline.stages['finetune']!.inputs).toEqual({ model: 'unfreeze.model', dataset: 'prep.dataset', lr: 'find.lr' });
    expect(pipeline.stages['finetune']!.with).toMatchObject({ lr_scale: 1, schedule: { type: 'one_cycle' }, layer_decay: 0.7, label_smoothing: 0.1 });
    expect(pipeline.stages['eval']!.with).toMatchObject({ tta: { flip: true } });
    const lines = text.split('\n');
    for (const setting of ['uses: lr-find', 'lr: find.lr', 'lr_scale:', 'schedule:', 'layer_decay:', 'label_smoothing:', 'tta:']) {
      const at = lines.findIndex((line) => line.split('#')[0]!.includes(setting));
      expect(at, setting).toBeGreaterThan(0);
      const explained = lines[at]!.includes('#') || lines[at - 1]!.trimStart().startsWith('#');
      expect(explained, `${setting} is explained on its line or by a comment line above it`).toBe(true);
    }
    const dryRun = await rig.run('run', '--dry-run');
    expect(dryRun.exitCode, dryRun.stderr).toBe(0);
    expect(dryRun.stdout.match(/^> (\w+): will run/gm)).toEqual(RECIPE.map((id) => `> ${id}: will run`));

    // The recipe runs as written, made small: the CNN the repository ships, at the digits' own 28 px.
    const small = ['params.image_size=28', 'features.base=mnist_cnn', 'unfreeze.from_layer=conv3', 'find.iterations=10', 'head.epochs=2', 'finetune.epochs=2'];
    const run = await rig.runJson(...small.flatMap((setting) => ['--set', setting]));
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.statuses).toEqual(Object.fromEntries(RECIPE.map((id) => [id, 'ran'])));
    const lock = rig.lockfile() as unknown as { stages: Record<string, { metrics: Record<string, number> }> };
    expect(lock.stages['finetune']!.metrics['lr']).toBe(lock.stages['find']!.metrics['suggested_lr']);
    expect(lock.stages['eval']!.metrics['tta_accuracy']).toBeGreaterThan(0);
  });
});
