import { existsSync, readdirSync, rmSync, utimesSync } from 'node:fs';
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

/** `headstart run --workers 2` started in the background, its stdout collected with when each `[finetune] epoch N:` line came. */
function startRun(rig: Rig, ...args: string[]) {
  const child = rig.spawn({}, 'run', '--workers', '2', ...args);
  const started = { stdout: '', epochLineAt: new Map<number, number>(), child };
  child.stdout!.on('data', (chunk: Buffer) => {
    started.stdout += chunk.toString();
    for (const match of started.stdout.matchAll(/^\[finetune\] epoch (\d+):/gm)) if (!started.epochLineAt.has(Number(match[1]))) started.epochLineAt.set(Number(match[1]), Date.now());
  });
  return started;
}

/** Makes the fine-tune's key one that never finished (as before its first run), so that a plain run runs it. */
function forgetFinetune(rig: Rig): void {
  const key = rig.lockfile().stages['finetune']!.key;
  rmSync(join(rig.dir, '.headstart/cache/runs', key.slice(0, 2), `${key}.json`));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a fine-tune killed with kill -9', () => {
  it('resumes at the next epoch from its snapshot on a plain re-run and ends with the hashes of an uninterrupted run; --force starts over', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const uninterrupted = startRun(rig);
    const done = await uninterrupted.child;
    expect(done.exitCode, String(done.stderr)).toBe(0);
    expect(uninterrupted.stdout).not.toContain('resuming');
    expect(uninterrupted.stdout).toContain('[finetune] training on 2 threads');
    const expected = finetuneOutputs(rig);
    expect(snapshotEpochs(rig)).toEqual([]); // a finished stage leaves none
    const epochMs = uninterrupted.epochLineAt.get(3)! - uninterrupted.epochLineAt.get(2)!;

    const moments: { what: string; killWhen: (run: ReturnType<typeof startRun>) => Promise<void>; resumeAt: number[]; midEpoch3?: true }[] = [
      { what: "just after epoch 1's snapshot is written", killWhen: () => until(() => snapshotEpochs(rig).includes(1), "epoch 1's snapshot"), resumeAt: [2] },
      {
        // Epoch 3's batches start as soon as epoch 2's snapshot is written; a quarter of an epoch (as long as
        // the uninterrupted run's epoch 3 took) later they are still running. Checked below: no `epoch 3:` line yet.
        what: 'mid-epoch 3, a quarter of an epoch after epoch 2\'s snapshot',
        killWhen: async () => {
          await until(() => snapshotEpochs(rig).includes(2), "epoch 2's snapshot");
          await sleep(epochMs / 4);
        },
        resumeAt: [3],
        midEpoch3: true,
      },
      // Epoch 3's line is logged after its batches and validation, before its snapshot is written (or as it is).
      { what: "at the end of epoch 3, around its snapshot's write", killWhen: (run) => until(() => run.epochLineAt.has(3), 'the epoch 3 line'), resumeAt: [3, 4] },
    ];
    for (const moment of moments) {
      forgetFinetune(rig);
      const run = startRun(rig);
      await moment.killWhen(run);
      run.child.kill('SIGKILL');
      await run.child;
      if (moment.midEpoch3) expect(run.stdout, moment.what).not.toMatch(/^\[finetune\] epoch 3:/m);
      // Killed between writing a snapshot and removing the one before it, both are there: the newest counts.
      const saved = snapshotEpochs(rig);
      expect(saved.length, moment.what).toBeGreaterThan(0);
      const resumeAt = Math.max(...saved) + 1;
      expect(moment.resumeAt, moment.what).toContain(resumeAt);

      const resumed = await rig.run('run', '--workers', '2');
      expect(resumed.exitCode, resumed.stderr).toBe(0);
      expect(resumed.stdout, moment.what).toContain(`[finetune] resuming at epoch ${resumeAt} of ${EPOCHS}`);
      expect(resumed.stdout).not.toMatch(new RegExp(`^\\[finetune\\] epoch ${resumeAt - 1}:`, 'm'));
      expect(finetuneOutputs(rig), moment.what).toEqual(expected);
      expect(snapshotEpochs(rig)).toEqual([]);
    }

    // --force after a kill: the snapshot is discarded and training starts at epoch 1.
    forgetFinetune(rig);
    const killed = startRun(rig);
    await until(() => snapshotEpochs(rig).includes(1), "epoch 1's snapshot");
    killed.child.kill('SIGKILL');
    await killed.child;
    expect(snapshotEpochs(rig).length).toBeGreaterThan(0);
    const forced = await rig.run('run', '--workers', '2', '--force', 'finetune');
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('[finetune] discarding the training snapshot of a previous run (--force)');
    expect(forced.stdout).not.toContain('resuming');
    expect(forced.stdout).toMatch(/^\[finetune\] epoch 1:/m);
    expect(finetuneOutputs(rig)).toEqual(expected);
    expect(snapshotEpochs(rig)).toEqual([]);
  });

  it('leaves a snapshot that gc keeps while it is recent and removes once it is older than --keep-days', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const child = rig.spawn({}, 'run', '--workers', '2');
    await until(() => snapshotEpochs(rig).length > 0, 'a snapshot');
    child.kill('SIGKILL');
    await child;
    const fresh = await rig.run('gc');
    expect(fresh.exitCode, fresh.stderr).toBe(0);
    expect(fresh.stdout).not.toContain('training snapshot');
    expect(snapshotEpochs(rig).length).toBeGreaterThan(0);

    const root = join(rig.dir, '.headstart/cache/snapshots');
    const weekAgo = new Date(Date.now() - 8 * 24 * 60 * 60 * 1000);
    for (const key of readdirSync(root)) {
      for (const name of readdirSync(join(root, key))) utimesSync(join(root, key, name), weekAgo, weekAgo);
      utimesSync(join(root, key), weekAgo, weekAgo);
    }
    const old = await rig.run('gc', '--keep-days', '7');
    expect(old.exitCode, old.stderr).toBe(0);
    expect(old.stdout).toMatch(/, 1 stale training snapshot and /);
    expect(snapshotEpochs(rig)).toEqual([]);
  });
});
