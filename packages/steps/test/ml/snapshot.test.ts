import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { snapshotName } from '../../src/ml/snapshot.js';
import { fitEpochs, fitWithEarlyStopping, oneHot, type History } from '../../src/ml/training.js';
import { loadBackend } from '../../src/runtime/index.js';

const { tf } = await loadBackend('wasm');

const EPOCHS = 4;
const ROWS = 40;

/** The same small model, compiled afresh, for each run to compare. */
function makeModel(optimizer: () => Tfjs.Optimizer): Tfjs.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.dense({ inputShape: [6], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  model.add(tf.layers.dropout({ rate: 0.25, seed: 2 }));
  model.add(tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
  model.compile({ optimizer: optimizer(), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

const split = () => ({ x: tf.randomNormal([ROWS, 6], 0, 1, 'float32', 5), y: oneHot(tf, Int32Array.from({ length: ROWS }, (_, i) => i % 3), 3), count: ROWS });

interface Run {
  history: History;
  weights: number[][];
  logged: string[];
}

/** Trains a fresh model with snapshots in `dir`; `stopAfter`: aborted (a kill stand-in) once that epoch's snapshot is written. */
async function train(dir: string, stopAfter?: number, optimizer: () => Tfjs.Optimizer = () => tf.train.adam(0.01)): Promise<Run> {
  const model = makeModel(optimizer);
  const [train, val] = [split(), split()];
  const logged: string[] = [];
  const controller = new AbortController();
  try {
    const history = await fitWithEarlyStopping(model, fitEpochs(tf, model, { train, val }, { batchSize: 8 }), {
      epochs: EPOCHS,
      seed: 7,
      earlyStopping: { patience: 3, monitor: 'val_loss' },
      schedule: { type: 'plateau', warmup_epochs: 0, min_lr: 0, pct_start: 0.25, factor: 0.5, patience: 1, step_epochs: 3 },
      signal: controller.signal,
      onEpoch: (r) => {
        if (r.epoch === stopAfter) queueMicrotask(() => controller.abort());
      },
      snapshots: { tf, dir, log: { info: (line) => logged.push(line), warn: (line) => logged.push(`warn: ${line}`) } },
    });
    const weights = model.getWeights().map((w) => Array.from(new Uint32Array((w.dataSync() as Float32Array).slice().buffer)));
    return { history, weights, logged };
  } finally {
    tf.dispose([train.x, train.y, val.x, val.y]);
    model.dispose();
  }
}

const tempDir = () => mkdtempSync(join(tmpdir(), 'headstart-snapshot-'));

describe('training snapshots', () => {
  const optimizers: [string, () => Tfjs.Optimizer][] = [
    ['adam', () => tf.train.adam(0.01)],
    ['rmsprop', () => tf.train.rmsprop(0.01)],
    ['sgd with momentum', () => tf.train.momentum(0.05, 0.9)],
  ];
  it.each(optimizers)('a run stopped after epoch 2 resumes at epoch 3 and ends with the bits of an uninterrupted run (%s)', async (_name, optimizer) => {
    const whole = await train(tempDir(), undefined, optimizer);
    const dir = tempDir();
    await expect(train(dir, 2, optimizer)).rejects.toThrow();
    expect(readdirSync(dir)).toEqual([snapshotName(2)]);
    const resumed = await train(dir, undefined, optimizer);
    expect(resumed.logged).toEqual([`resuming at epoch 3 of ${EPOCHS}`]);
    expect(resumed.history).toEqual(whole.history);
    expect(resumed.weights).toEqual(whole.weights);
  });

  it('a run resumed after its best epoch restores the best epoch\'s weights at the end, bit for bit', async () => {
    // Too high a learning rate: validation loss is best early, then worse, so the snapshot keeps the best weights apart.
    const overshooting = () => tf.train.momentum(3, 0.9);
    const whole = await train(tempDir(), undefined, overshooting);
    expect(whole.history.best_epoch).toBeLessThan(3); // the case this test is for: the best epoch lies before the snapshot's
    const dir = tempDir();
    await expect(train(dir, 3, overshooting)).rejects.toThrow();
    const resumed = await train(dir, undefined, overshooting);
    expect(resumed.logged).toEqual([`resuming at epoch 4 of ${EPOCHS}`]);
    expect(resumed.history).toEqual(whole.history);
    expect(resumed.weights).toEqual(whole.weights);
  });

  it('keeps another process\'s snapshot being written, and removes its own interrupted writes and older epochs', async () => {
    const dir = tempDir();
    const foreign = `${snapshotName(1)}.tmp-${process.pid + 1}-0badf00d`;
    const own = `${snapshotName(1)}.tmp-${process.pid}-0badf00d`;
    writeFileSync(join(dir, foreign), 'half a snapshot');
    writeFileSync(join(dir, own), 'half a snapshot');
    writeFileSync(join(dir, 'notes.txt'), 'not a snapshot');
    await train(dir);
    expect(readdirSync(dir).sort()).toEqual([snapshotName(EPOCHS), foreign, 'notes.txt'].sort());
  });

  it('a truncated snapshot is ignored and said so: training starts over and ends the same', async () => {
    const whole = await train(tempDir());
    const dir = tempDir();
    await expect(train(dir, 2)).rejects.toThrow();
    const path = join(dir, snapshotName(2));
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const restarted = await train(dir);
    expect(restarted.logged).toEqual([`warn: ignoring the training snapshot ${snapshotName(2)}: its checksum does not match (a partial or damaged file)`]);
    expect(restarted.weights).toEqual(whole.weights);
  });

  it('a snapshot with one byte changed is ignored too', async () => {
    const dir = tempDir();
    await expect(train(dir, 1)).rejects.toThrow();
    const path = join(dir, snapshotName(1));
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 1;
    writeFileSync(path, bytes);
    expect((await train(dir)).logged).toEqual([`warn: ignoring the training snapshot ${snapshotName(1)}: its checksum does not match (a partial or damaged file)`]);
  });
});
