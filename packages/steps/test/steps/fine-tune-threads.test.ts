import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import extractFeatures from '../../src/steps/extract-features.js';
import fineTune from '../../src/steps/fine-tune.js';
import loadData from '../../src/steps/load-data.js';
import preprocess from '../../src/steps/preprocess.js';
import trainHead from '../../src/steps/train-head.js';
import unfreeze from '../../src/steps/unfreeze.js';
import { runStep, tempDir } from '../data/fixtures.js';

/** The fine-tune step on MNIST (280 training images, 28 px) and mnist_cnn with a new head that has dropout. */
let workdir: string;
let dataset: string;
let unfrozen: string;

beforeAll(async () => {
  workdir = await tempDir('headstart-threads-');
  const loaded = await runStep(loadData, { source: 'mnist', limit_per_class: 40 }, { workdir, seed: 3 });
  dataset = (await runStep(preprocess, { size: 28, split: { train: 0.7, val: 0.15, test: 0.15 } }, { workdir, inputs: { dataset: loaded.outputs['dataset']! }, seed: 3 })).outputs['dataset']!;
  const features = (await runStep(extractFeatures, { base: 'mnist_cnn' }, { workdir, inputs: { dataset } })).outputs['features']!;
  const head = await runStep(trainHead, { layers: [{ dense: 16 }, { dropout: 0.3 }], epochs: 2, early_stopping: null }, { workdir, inputs: { features }, seed: 5 });
  unfrozen = (await runStep(unfreeze, { from_layer: 'conv3' }, { workdir, inputs: { model: head.outputs['model']! } })).outputs['model']!;
}, 120_000);

async function weights(modelDir: string): Promise<Float32Array> {
  const bytes = await readFile(path.join(modelDir, 'weights.bin'));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i]!)), 0);
}

async function fineTuneWith(threads: number, recipe: Record<string, unknown> = {}) {
  const run = await runStep(fineTune, { epochs: 2, lr: 0.001, batch_size: 32, ...recipe }, { workdir, inputs: { model: unfrozen, dataset }, seed: 1, settings: { threads } });
  const history = JSON.parse(await readFile(path.join(run.outputs['history']!, 'history.json'), 'utf8'));
  return { infos: run.recorded.infos, history, metrics: run.result ? run.result.metrics : undefined, weights: await weights(run.outputs['model']!) };
}

describe('fine-tune on several threads', () => {
  it('with --workers 2 shares every batch between two threads and trains exactly the weights one thread trains', async () => {
    const one = await fineTuneWith(1);
    const two = await fineTuneWith(2);
    expect(one.infos.some((line) => line.startsWith('training on'))).toBe(false);
    expect(two.infos).toContain('training on 2 threads, each batch shared between them');
    const withoutTimes = (history: { epochs: { seconds: number }[] }) => ({ ...history, epochs: history.epochs.map((record) => ({ ...record, seconds: 0 })) });
    expect(withoutTimes(two.history)).toEqual(withoutTimes(one.history));
    expect(maxDifference(one.weights, await weights(unfrozen))).toBeGreaterThan(1e-3);
    expect(two.weights).toEqual(one.weights);
  });

  it('with the recipe (one_cycle after a warmup, layer_decay, balanced class weights, label smoothing) trains the same bits on 1 and 2 threads', async () => {
    const recipe = { schedule: { type: 'one_cycle', warmup_epochs: 0.5, min_lr: 1e-6 }, layer_decay: 0.7, class_weight: 'balanced', label_smoothing: 0.1 };
    const one = await fineTuneWith(1, recipe);
    const two = await fineTuneWith(2, recipe);
    expect(two.infos).toContain('training on 2 threads, each batch shared between them');
    expect(one.infos).toContain('lr multipliers: head ×1, conv3 ×0.7');
    expect(two.history).toEqual(one.history);
    expect(two.weights).toEqual(one.weights);
    const [first, last] = one.history.epochs.map((record: { lr: number }) => record.lr);
    expect(first).toBeGreaterThan(0.0009); // past the peak, on the way down
    expect(first).toBeLessThan(0.001);
    expect(last).toBe(1e-6);
    expect(one.metrics).toMatchObject({ lr: 0.001 });
    expect(one.weights).not.toEqual((await fineTuneWith(1)).weights);
  });
});
