import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

/** mnist-tiny cut down: a fine-tune of 4 epochs on 2 threads, with early stopping and plateau's state to carry over. */
const PIPELINE = `
name: mnist-tiny-resume
seed: 1
stages:
  data: { uses: load-data, with: { source: mnist, limit_per_class: 40 } }
  prep: { uses: preprocess, inputs: { dataset: data.dataset }, with: { size: 28, split: { train: 0.7, val: 0.15, test: 0.15 } } }
  features: { uses: extract-features, inputs: { dataset: prep.dataset }, with: { base: mnist_cnn } }
  head: { uses: train-head, inputs: { features: features.features }, with: { layers: [{ dense: 16, activation: relu }, { dropout: 0.2 }], epochs: 2, lr: 0.003 } }
  unfreeze: { uses: unfreeze, inputs: { model: head.model }, with: { from_layer: conv3 } }
  finetune:
    uses: fine-tune
    inputs: { model: unfreeze.model, dataset: prep.dataset }
    with: { lr: 0.001, epochs: 4, batch_size: 32, early_stopping: { patience: 3, monitor: val_loss }, schedule: { type: plateau, patience: 1, factor: 0.5 } }
`;
const EPOCHS = 4;

const SNAPSHOT = /^epoch-(\d+)\.snapshot$/;

/** The epochs whose snapshot files exist in the cache now (any stage key). */
function snapshotEpochs(rig: Rig): number[] {
  const root = join(rig.dir, '.headstart/cache/snapshots');
  if (!existsSync(root)) return [];
  return readdirSync(root).flatMap((key) => readdirSync(join(root, key)).flatMap((name) => (SNAPSHOT.test(name) ? [Number(SNAPSHOT.exec(name)![1])] : [])));
}

/** Resolves once `ready()` holds: a condition polled, not a timing guess. */
async function until(ready: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`${what} never happened`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function finetuneOutputs(rig: Rig): Record<string, { hash: string }> {
  return rig.lockfile().stages['finetune']!.outputs;
}

describe('a fine-tune killed with kill -9', () => {
  it('resumes at the next epoch from its snapshot and ends with the hashes of an uninterrupted run', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const uninterrupted = await rig.run('run', '--workers', '2');
    expect(uninterrupted.exitCode, uninterrupted.stderr).toBe(0);
    expect(uninterrupted.stdout).not.toContain('resuming');
    expect(uninterrupted.stdout).toContain('[finetune] training on 2 threads');
    const expected = finetuneOutputs(rig);
    expect(snapshotEpochs(rig)).toEqual([]); // a finished stage leaves none

    // Killed right after epoch 1's snapshot, right after epoch 2's, and mid-epoch (epoch 3's line logged, its snapshot maybe not yet written).
    const moments: { what: string; ready: (rig: Rig, stdout: string) => boolean }[] = [
      { what: "epoch 1's snapshot", ready: (r) => snapshotEpochs(r).includes(1) },
      { what: "epoch 2's snapshot", ready: (r) => snapshotEpochs(r).includes(2) },
      { what: 'mid-epoch 3', ready: (_r, stdout) => /^\[finetune\] epoch 3:/m.test(stdout) },
    ];
    for (const moment of moments) {
      const child = rig.spawn({}, 'run', '--workers', '2', '--force', 'finetune');
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      await until(() => moment.ready(rig, stdout), moment.what);
      child.kill('SIGKILL');
      await child;
      // Killed between writing a snapshot and removing the one before it, both are there: the newest counts.
      const saved = snapshotEpochs(rig);
      expect(saved.length, moment.what).toBeGreaterThan(0);
      const resumeAt = Math.max(...saved) + 1;

      const resumed = await rig.run('run', '--workers', '2', '--force', 'finetune');
      expect(resumed.exitCode, resumed.stderr).toBe(0);
      expect(resumed.stdout, moment.what).toContain(`[finetune] resuming at epoch ${resumeAt} of ${EPOCHS}`);
      expect(resumed.stdout).not.toMatch(new RegExp(`^\\[finetune\\] epoch ${resumeAt - 1}:`, 'm'));
      expect(finetuneOutputs(rig), moment.what).toEqual(expected);
      expect(snapshotEpochs(rig)).toEqual([]);
    }
  });

  it('leaves a snapshot that gc removes once no process runs its stage', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const child = rig.spawn({}, 'run', '--workers', '2');
    await until(() => snapshotEpochs(rig).length > 0, 'a snapshot');
    child.kill('SIGKILL');
    await child;
    const gc = await rig.run('gc');
    expect(gc.exitCode, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/, 1 stale training snapshot and /);
    expect(snapshotEpochs(rig)).toEqual([]);
  });
});
