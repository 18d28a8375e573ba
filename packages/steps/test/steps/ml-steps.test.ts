import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { StepUserError } from '@headstart/core';
import type { Tensor } from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import evaluate from '../../src/steps/evaluate.js';
import extractFeatures from '../../src/steps/extract-features.js';
import fineTune from '../../src/steps/fine-tune.js';
import loadData from '../../src/steps/load-data.js';
import preprocess from '../../src/steps/preprocess.js';
import trainHead from '../../src/steps/train-head.js';
import train from '../../src/steps/train.js';
import unfreeze from '../../src/steps/unfreeze.js';
import { loadBackend } from '../../src/runtime/backend.js';
import { NpyReader } from '../../src/runtime/npy.js';
import { runStep, tempDir } from '../data/fixtures.js';

/** Each ML step on tiny real data (MNIST, 12 per class, 28 px) and the small CNN the repository ships. */
let workdir: string;
let dataset: string;
let features: string;
let head: Awaited<ReturnType<typeof runStep>>;

async function npyShape(file: string): Promise<number[]> {
  const reader = await NpyReader.open(file);
  await reader.close();
  return reader.shape;
}

async function modelJson(dir: string): Promise<{ modelTopology: { model_config?: unknown; config?: { layers: { name: string; config: { name: string; trainable: boolean } }[] } } }> {
  return JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
}

function trainableByLayer(json: Awaited<ReturnType<typeof modelJson>>): Record<string, boolean> {
  const layers = json.modelTopology.config!.layers;
  return Object.fromEntries(layers.map((layer) => [layer.config.name, layer.config.trainable]));
}

/** Rows of input that went through the frozen layer `name` (a Conv2D) while `run` ran, and what it returned. */
async function rowsThroughLayer<T>(name: string, run: () => Promise<T>): Promise<{ count: number; result: T }> {
  const { tf } = await loadBackend();
  let prototype = Object.getPrototypeOf(tf.layers.conv2d({ filters: 1, kernelSize: 1 })) as object;
  while (!Object.prototype.hasOwnProperty.call(prototype, 'call')) prototype = Object.getPrototypeOf(prototype) as object;
  const convCall = vi.spyOn(prototype as { call(inputs: Tensor | Tensor[]): Tensor }, 'call');
  try {
    const result = await run();
    const count = convCall.mock.calls.reduce((rows, [inputs], i) => {
      const layer = convCall.mock.contexts[i] as { name: string };
      return layer.name === name ? rows + (Array.isArray(inputs) ? inputs[0]! : inputs).shape[0]! : rows;
    }, 0);
    return { count, result };
  } finally {
    convCall.mockRestore();
  }
}

beforeAll(async () => {
  workdir = await tempDir('headstart-ml-');
  const loaded = await runStep(loadData, { source: 'mnist', limit_per_class: 12 }, { workdir, seed: 3 });
  const prepared = await runStep(preprocess, { size: 28, split: { train: 0.5, val: 0.25, test: 0.25 } }, { workdir, inputs: { dataset: loaded.outputs['dataset']! }, seed: 3 });
  dataset = prepared.outputs['dataset']!;
  features = (await runStep(extractFeatures, { base: 'mnist_cnn' }, { workdir, inputs: { dataset } })).outputs['features']!;
  head = await runStep(trainHead, { layers: [{ dense: 16 }], epochs: 4, early_stopping: null }, { workdir, inputs: { features }, seed: 5 });
}, 120_000);

describe('extract-features', () => {
  it('writes one float32 feature row per image and the labels, per split', async () => {
    expect(await npyShape(path.join(features, 'train/features.npy'))).toEqual([60, 64]);
    expect(await npyShape(path.join(features, 'test/features.npy'))).toEqual([30, 64]);
    expect(await readFile(path.join(features, 'train/labels.npy'))).toEqual(await readFile(path.join(dataset, 'train/labels.npy')));
    const base = JSON.parse(await readFile(path.join(features, 'base.json'), 'utf8'));
    expect(base).toMatchObject({ ref: 'mnist_cnn', inputSize: 28, info: { layer: 'conv3_relu', pooling: 'avg', featureShape: [64] }, imageDecoding: { size: 28, fit: 'fill', background: 'white' } });
  });

  it('cuts at another layer and keeps feature maps without pooling', async () => {
    const { outputs } = await runStep(extractFeatures, { base: 'mnist_cnn', layer: 'conv2_relu', pooling: 'none', splits: ['val'] }, { workdir, inputs: { dataset } });
    const shape = await npyShape(path.join(outputs['features']!, 'val/features.npy'));
    expect(shape).toHaveLength(4);
    expect(shape[0]).toBe(30);
  });
});

describe('train-head', () => {
  it('outputs the head, base + head taking images, and the history', async () => {
    const history = JSON.parse(await readFile(path.join(head.outputs['history']!, 'history.json'), 'utf8'));
    expect(history.epochs).toHaveLength(4);
    expect(history.best_epoch).toBe(4);
    const full = await modelJson(head.outputs['model']!);
    expect(JSON.stringify(full.modelTopology)).toContain('"batch_input_shape":[null,28,28,1]');
    const trainable = trainableByLayer(full);
    expect(trainable['conv1']).toBe(false);
    expect(trainable['head_output']).toBe(true);
    expect(head.result).toMatchObject({ info: { backend: 'wasm' } });
  });

  it('is repeatable for a seed', async () => {
    const again = await runStep(trainHead, { layers: [{ dense: 16 }], epochs: 4, early_stopping: null }, { workdir, inputs: { features }, seed: 5 });
    const other = await runStep(trainHead, { layers: [{ dense: 16 }], epochs: 4, early_stopping: null }, { workdir, inputs: { features }, seed: 6 });
    const weights = async (run: typeof again) => readFile(path.join(run.outputs['head']!, 'weights.bin'));
    expect(await weights(again)).toEqual(await weights(head));
    expect(await weights(other)).not.toEqual(await weights(head));
  });

  it('takes a schedule and label smoothing: each changes the weights, history records the lr per epoch', async () => {
    const base = { layers: [{ dense: 16 }], epochs: 4, early_stopping: null };
    const runs = await Promise.all([{ schedule: { type: 'cosine', min_lr: 1e-5 } }, { label_smoothing: 0.2 }].map((extra) => runStep(trainHead, { ...base, ...extra }, { workdir, inputs: { features }, seed: 5 })));
    const weights = async (run: typeof head) => readFile(path.join(run.outputs['head']!, 'weights.bin'));
    for (const run of runs) expect(await weights(run)).not.toEqual(await weights(head));
    const cosine = JSON.parse(await readFile(path.join(runs[0]!.outputs['history']!, 'history.json'), 'utf8'));
    expect(cosine.epochs.map((record: { lr: number }) => record.lr).at(-1)).toBe(1e-5);
    expect(cosine.lr).toBe(0.001);
    expect(runs[0]!.result).toMatchObject({ metrics: { lr: 0.001 } });
  });
});

describe('train', () => {
  it('takes balanced class weights, label smoothing and a step schedule', async () => {
    const params = { layers: [{ conv: 4 }, { max_pool: 2 }, { dense: 8 }], epochs: 2, early_stopping: null, class_weight: 'balanced', label_smoothing: 0.1, schedule: { type: 'step', step_epochs: 1, factor: 0.5 } };
    const { outputs } = await runStep(train, params, { workdir, inputs: { dataset }, seed: 2 });
    const history = JSON.parse(await readFile(path.join(outputs['history']!, 'history.json'), 'utf8'));
    expect(history.epochs.map((record: { lr: number }) => record.lr)).toEqual([0.001, 0.0005]);
  });
});

describe('unfreeze', () => {
  it('makes the named layer and everything above it trainable', async () => {
    const { outputs, recorded } = await runStep(unfreeze, { from_layer: 'conv3' }, { workdir, inputs: { model: head.outputs['model']! } });
    const trainable = trainableByLayer(await modelJson(outputs['model']!));
    expect([trainable['conv2'], trainable['conv3'], trainable['conv3_bn'], trainable['head_output']]).toEqual([false, true, true, true]);
    expect(recorded.infos.join('\n')).toMatch(/conv3 +18432 of 18432/);
  });

  it('names a misspelt layer', async () => {
    await expect(runStep(unfreeze, { from_layer: 'conv33' }, { workdir, inputs: { model: head.outputs['model']! } })).rejects.toThrow(new StepUserError('the base has no layer "conv33" (did you mean "conv3"?)'));
  });
});

describe('fine-tune and evaluate', () => {
  it('trains the part above the first trainable layer on activations cached once', async () => {
    const frozenBase = await runStep(unfreeze, { last: 1 }, { workdir, inputs: { model: head.outputs['model']! } });
    const fineTuned = async (cacheBoundary: boolean) => {
      const rows = await rowsThroughLayer('conv1', () => runStep(fineTune, { epochs: 2, lr: 0.001, cache_boundary: cacheBoundary }, { workdir, inputs: { model: frozenBase.outputs['model']!, dataset }, seed: 1 }));
      return { rows: rows.count, history: JSON.parse(await readFile(path.join(rows.result.outputs['history']!, 'history.json'), 'utf8')) };
    };
    const cached = await fineTuned(true);
    expect(cached.history).toMatchObject({ phase: 'fine-tune', cached_boundary: true });
    expect(cached.history.epochs).toHaveLength(2);
    expect(cached.rows).toBe(60 + 30); // the train and val images, once each
    const uncached = await fineTuned(false);
    expect(uncached.history).toMatchObject({ cached_boundary: false });
    expect(uncached.rows).toBeGreaterThanOrEqual(2 * (60 + 30)); // every image, every epoch
  });

  it.each([
    [{ lr_mult: [{ from_layer: 'conv9', mult: 0.5 }] }, 'lr_mult: the model has no layer "conv9" at or above its first trainable layer (head_dense_0)'],
    [{ layer_decay: 0.7, optimizer: 'rmsprop' }, 'layer_decay and lr_mult need optimizer: adam, not rmsprop'],
  ])('fine-tune refuses %j', async (params, message) => {
    await expect(runStep(fineTune, { epochs: 1, ...params }, { workdir, inputs: { model: head.outputs['model']!, dataset } })).rejects.toThrow(new StepUserError(message));
  });

  it('evaluate writes the metrics and reports a failed fail_under', async () => {
    const { result, outputs } = await runStep(evaluate, { split: 'test', fail_under: { accuracy: 0.999 } }, { workdir, inputs: { model: head.outputs['model']!, dataset } });
    const metrics = JSON.parse(await readFile(path.join(outputs['metrics']!, 'metrics.json'), 'utf8'));
    expect(metrics.count).toBe(30);
    expect(metrics.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(30);
    expect(result).toMatchObject({ failedChecks: [expect.stringMatching(/^accuracy 0\.\d{4} on the test split is below fail_under 0\.999$/)] });
  });
});
