import type { LayersModel, Tensor, Tensor2D } from '@tensorflow/tfjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startEpochTrainer } from '../../src/ml/data-parallel/epochs.js';
import { planTraining } from '../../src/ml/data-parallel/plan.js';
import { smoothLabels } from '../../src/ml/data-parallel/slices.js';
import { CONSTANT, learningRateAt, type Schedule } from '../../src/ml/schedule.js';
import { DataParallelTrainer } from '../../src/ml/data-parallel/trainer.js';
import { threadsFor } from '../../src/ml/threads/thread-count.js';
import { fitEpochs, fitWithEarlyStopping, type FitOptions, type History, type TensorSplit } from '../../src/ml/training.js';
import { freezeBatchNorm, loadModel, MNIST_CNN_DIR } from '../../src/runtime/index.js';
import { mnistDigits, wasm } from '../runtime/helpers.js';
import { startedThreads as started } from './recorded-threads.js';

vi.mock('node:worker_threads', async (importOriginal) => (await import('./recorded-threads.js')).recordingWorkerThreads(importOriginal));

const tf = await wasm();

/** MNIST digits 0–4 scaled to [0, 1], as mnist_cnn takes them. */
function digits(perDigit: number, from: 'start' | 'end'): TensorSplit {
  const { pixels, labels, count } = mnistDigits([0, 1, 2, 3, 4], perDigit, from);
  const x = tf.tensor4d(pixels.map((p) => p / 255), [count, 28, 28, 1]);
  return { x, y: tf.oneHot(tf.tensor1d(labels, 'int32'), 5).toFloat() as Tensor2D, count };
}

/** mnist_cnn with conv2 and above trainable, BN in inference mode (as fine-tune runs it), Adam; `dropout` replaces its rate. */
async function smallConvNet(dropout?: number, labelSmoothing = 0): Promise<LayersModel> {
  const model = await loadModel(tf, MNIST_CNN_DIR);
  const first = model.layers.findIndex((layer) => layer.name === 'conv2');
  model.layers.forEach((layer, i) => (layer.trainable = i >= first));
  if (dropout !== undefined) (model.getLayer('dropout') as unknown as { rate: number }).rate = dropout;
  freezeBatchNorm(model, 'always');
  model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  smoothLabels(tf, model, labelSmoothing);
  return model;
}

/** max |a − b| over max |b|, over every weight of two models. */
function weightsDifference(a: LayersModel, b: LayersModel): number {
  const [wa, wb] = [a.getWeights(), b.getWeights()];
  expect(wa.map((w) => w.shape)).toEqual(wb.map((w) => w.shape));
  return Math.max(...wa.map((w, i) => tf.tidy(() => tf.max(tf.abs(tf.sub(w, wb[i]!))).div(tf.max(tf.abs(wb[i]!)).add(1e-12)).dataSync()[0]!)));
}

function dispose(split: TensorSplit): void {
  tf.dispose([split.x, split.y] as Tensor[]);
}

afterEach(() => {
  expect(started.every((worker) => worker.threadId === -1)).toBe(true);
  started.length = 0;
});

describe('a data-parallel step', () => {
  it.each([
    ['as shipped, with dropout 0.2', undefined],
    ['without dropout', 0],
  ])('on mnist_cnn %s, shared between 2 threads, equals one fit step on one thread', async (_label, dropout) => {
    const train = digits(5, 'start');
    const [single, parallel] = [await smallConvNet(dropout), await smallConvNet(dropout)];
    const before = await smallConvNet(dropout);
    const rows = Int32Array.from([3, 17, 0, 21, 8, 12, 5, 24, 1, 9, 14, 22, 7, 19, 2, 11, 16, 4, 23, 10]); // slices of 16 and 4 rows
    const indices = tf.tensor1d(rows, 'int32');
    const [x, y] = [tf.gather(train.x, indices), tf.gather(train.y, indices)];
    const fitted = await single.fit(x, y, { batchSize: rows.length, epochs: 1, shuffle: false, verbose: 0 });
    const trainer = await DataParallelTrainer.start(tf, parallel, { train }, 2, rows.length);
    expect(trainer.threads).toBe(2);
    try {
      const step = await trainer.trainBatch(rows);
      expect(step.loss).toBeCloseTo(fitted.history['loss']![0] as number, 5);
      expect(step.correct / rows.length).toBeCloseTo(fitted.history['acc']![0] as number, 6);
    } finally {
      await trainer.close();
    }
    expect(weightsDifference(single, before)).toBeGreaterThan(1e-3);
    expect(weightsDifference(parallel, single)).toBeLessThan(1e-4);
    tf.dispose([x, y, indices]);
    [single, parallel, before].forEach((model) => model.dispose());
    dispose(train);
  });
});

describe('fitWithEarlyStopping on 2 threads', () => {
  const options: FitOptions = { epochs: 3, seed: 7, earlyStopping: { patience: 2, monitor: 'val_loss' }, signal: new AbortController().signal, onEpoch: () => {} };
  /** Trains with the epoch trainer planTraining picks for `threads` threads (batches of 32 unless said), logging into `log`. */
  const fitOn = async (threads: number, model: LayersModel, splits: { train: TensorSplit; val?: TensorSplit }, log: string[], fit: Partial<FitOptions> = {}, batchSize = 32, classWeight?: Record<number, number>) =>
    fitWithEarlyStopping(model, await startEpochTrainer(tf, model, splits, { batchSize, threads, classWeight, log: (line) => log.push(line) }), { ...options, ...fit });

  /** Trains three models alike, by tfjs fit, on 1 thread and on 2: the 2-thread run must equal the 1-thread one bit for bit, and fit's within rounding. */
  async function compareWithFit(o: { fit?: Partial<FitOptions>; classWeight?: Record<number, number>; labelSmoothing?: number } = {}): Promise<History> {
    const [train, val] = [digits(20, 'start'), digits(5, 'end')];
    const [fitted, single, parallel] = [await smallConvNet(undefined, o.labelSmoothing), await smallConvNet(undefined, o.labelSmoothing), await smallConvNet(undefined, o.labelSmoothing)];
    const log: string[] = [];
    const byFit = await fitWithEarlyStopping(fitted, fitEpochs(tf, fitted, { train, val }, { batchSize: 32, classWeight: o.classWeight }), { ...options, ...o.fit });
    const one = await fitOn(1, single, { train, val }, log, o.fit, 32, o.classWeight);
    const two = await fitOn(2, parallel, { train, val }, log, o.fit, 32, o.classWeight);
    expect(log).toEqual(['training on 2 threads, each batch shared between them']);
    expect(two).toEqual(one);
    expect(parallel.getWeights().map((w) => w.dataSync())).toEqual(single.getWeights().map((w) => w.dataSync()));
    expect(one.best_epoch).toBe(byFit.best_epoch);
    one.epochs.forEach((record, i) => {
      for (const key of ['loss', 'accuracy', 'val_loss', 'val_accuracy', 'lr'] as const) expect(record[key]).toBeCloseTo(byFit.epochs[i]![key]!, 4);
    });
    expect(weightsDifference(single, fitted)).toBeLessThan(1e-4);
    [fitted, single, parallel].forEach((model) => model.dispose());
    [train, val].forEach(dispose);
    return one;
  }

  it('gives exactly the history and weights it gives on one thread, and those of tfjs fit within rounding', async () => {
    const history = await compareWithFit();
    expect(history.epochs.map((record) => record.lr)).toEqual([0.001, 0.001, 0.001]);
    expect(history.lr).toBe(0.001);
  });

  it('with a one_cycle schedule, class weights and label smoothing, the same: exact over threads, fit\'s within rounding', async () => {
    const schedule: Schedule = { ...CONSTANT, type: 'one_cycle', pct_start: 0.3, min_lr: 1e-5 };
    const history = await compareWithFit({ fit: { schedule, earlyStopping: null }, classWeight: { 0: 2, 1: 0.5, 2: 1, 3: 1.5, 4: 0.25 }, labelSmoothing: 0.1 });
    const lastBatch = (epoch: number) => learningRateAt(0.001, schedule, { epoch, batch: 3, batchesPerEpoch: 4, epochs: 3 }); // 100 rows: 4 batches
    expect(history.epochs.map((record) => record.lr)).toEqual([lastBatch(1), lastBatch(2), 1e-5]);
  });

  it('stays on one thread, saying why, where shards would see other batch statistics', async () => {
    const train = digits(8, 'start');
    const model = await smallConvNet();
    freezeBatchNorm(model, 'frozen'); // conv2_bn and conv3_bn are trainable: they train as in Keras
    const log: string[] = [];
    await fitOn(2, model, { train }, log, { epochs: 1 });
    expect(log).toEqual(['training on one thread: conv2_bn normalises with batch statistics']);
    expect(started).toEqual([]);
    model.dispose();
    dispose(train);
  });

  it('stays on one thread, saying why, when a batch is a single slice', async () => {
    const train = digits(8, 'start');
    const model = await smallConvNet();
    const log: string[] = [];
    await fitOn(2, model, { train }, log, { epochs: 1 }, 16);
    expect(log).toEqual(['training on one thread: threads share a batch in slices of 16 rows, and a batch of 16 is one']);
    expect(started).toEqual([]);
    model.dispose();
    dispose(train);
  });

  it('stays on one thread, saying why, when the training threads cannot build the model', async () => {
    class Doubling extends tf.layers.Layer {
      static readonly className = 'TestDoubling'; // registered in this thread only, as a custom layer of a step file would be
      override call(inputs: Tensor | Tensor[]): Tensor {
        return tf.tidy(() => tf.mul(Array.isArray(inputs) ? inputs[0]! : inputs, 2));
      }
    }
    tf.serialization.registerClass(Doubling);
    const model = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), new Doubling({}), tf.layers.dense({ units: 5, activation: 'softmax' })] });
    model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const train = digits(8, 'start');
    const log: string[] = [];
    const history = await fitOn(2, model, { train }, log, { epochs: 1 });
    expect(log).toEqual([expect.stringMatching(/^training on one thread: the training threads could not start \(training thread: .*TestDoubling/)]);
    expect(history.epochs).toHaveLength(1);
    expect(history.epochs[0]!.loss).toBeGreaterThan(0);
    expect(started).toHaveLength(1);
    model.dispose();
    dispose(train);
  });

  it('stops its training threads when aborted', async () => {
    const train = digits(20, 'start');
    const model = await smallConvNet();
    const controller = new AbortController();
    const epochs: number[] = [];
    const fit = fitOn(2, model, { train }, [], {
      earlyStopping: null,
      signal: controller.signal,
      onEpoch: (record) => {
        epochs.push(record.epoch);
        controller.abort();
      },
    });
    await expect(fit).rejects.toThrow(/aborted/);
    expect(epochs).toEqual([1]);
    expect(started).toHaveLength(1);
    model.dispose();
    dispose(train);
  });
});

describe('threadsFor', () => {
  it('takes the requested count (ctx.settings.threads) when the work has four batches per thread, else one', () => {
    expect(threadsFor(3 * 32 * 4, 32, 3)).toBe(3);
    expect(threadsFor(3 * 32 * 4 - 1, 32, 3)).toBe(1);
    expect(threadsFor(10_000, 32, 1)).toBe(1);
    expect(threadsFor(10_000, 32, Number.NaN)).toBe(1);
  });
});

describe('planTraining', () => {
  it('gives no more threads than a batch has slices, and the split-size rule when no count is given', async () => {
    const model = await smallConvNet();
    expect(planTraining(tf, model, { samples: 100, batchSize: 32, threads: 8 })).toEqual({ sliced: true, threads: 2 });
    expect(planTraining(tf, model, { samples: 100, batchSize: 64, threads: 3 })).toEqual({ sliced: true, threads: 3 });
    expect(planTraining(tf, model, { samples: 2 * 32 * 4, batchSize: 32, requestedThreads: 2 })).toEqual({ sliced: true, threads: 2 });
    expect(planTraining(tf, model, { samples: 2 * 32 * 4 - 1, batchSize: 32, requestedThreads: 2 })).toEqual({ sliced: true, threads: 1 });
    model.dispose();
  });
});
