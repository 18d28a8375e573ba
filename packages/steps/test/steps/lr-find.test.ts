import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import extractFeatures from '../../src/steps/extract-features.js';
import loadData from '../../src/steps/load-data.js';
import lrFind, { type CurveFile } from '../../src/steps/lr-find.js';
import preprocess from '../../src/steps/preprocess.js';
import trainHead from '../../src/steps/train-head.js';
import unfreeze from '../../src/steps/unfreeze.js';
import { loadModelArtifact } from '../../src/ml/model-artifact.js';
import { splitAtFirstTrainable } from '../../src/ml/model-graph.js';
import { loadTrainingData } from '../../src/ml/training-data.js';
import { loadBackend } from '../../src/runtime/index.js';
import { runStep, tempDir } from '../data/fixtures.js';

/** lr-find on MNIST (140 training images, 28 px) and mnist_cnn with a new head, unfrozen from conv3. */
let workdir: string;
let dataset: string;
let unfrozen: string;
let features: string;

beforeAll(async () => {
  workdir = await tempDir('headstart-lr-find-');
  const loaded = await runStep(loadData, { source: 'mnist', limit_per_class: 20 }, { workdir, seed: 3 });
  dataset = (await runStep(preprocess, { size: 28, split: { train: 0.7, val: 0.15, test: 0.15 } }, { workdir, inputs: { dataset: loaded.outputs['dataset']! }, seed: 3 })).outputs['dataset']!;
  features = (await runStep(extractFeatures, { base: 'mnist_cnn' }, { workdir, inputs: { dataset } })).outputs['features']!;
  const head = await runStep(trainHead, { layers: [{ dense: 16 }, { dropout: 0.3 }], epochs: 2, early_stopping: null }, { workdir, inputs: { features }, seed: 5 });
  unfrozen = (await runStep(unfreeze, { from_layer: 'conv3' }, { workdir, inputs: { model: head.outputs['model']! } })).outputs['model']!;
}, 120_000);

async function treeDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await readdir(dir)).sort()) hash.update(name).update(await readFile(path.join(dir, name)));
  return hash.digest('hex');
}

async function findLr(params: Record<string, unknown>, threads = 1) {
  const run = await runStep(lrFind, { iterations: 40, batch_size: 32, ...params }, { workdir, inputs: { model: unfrozen, dataset }, seed: 1, settings: { threads } });
  return { run, ...(await outputsOf(run.outputs)) };
}

/** The `lr` output's lr.json (its bytes and its suggestion) and the `curve` output's curve.json and lr.svg. */
async function outputsOf(outputs: Record<string, string>) {
  const [dir, curveDir] = [outputs['lr']!, outputs['curve']!];
  const bytes = await readFile(path.join(dir, 'lr.json'), 'utf8');
  const curveBytes = await readFile(path.join(curveDir, 'curve.json'), 'utf8');
  const files = { lr: await readdir(dir), curve: (await readdir(curveDir)).sort() };
  const svg = await readFile(path.join(curveDir, 'lr.svg'), 'utf8');
  return { bytes, lr: (JSON.parse(bytes) as { lr: number }).lr, curveBytes, file: JSON.parse(curveBytes) as CurveFile, files, svg, dir };
}

describe('lr-find', () => {
  it('writes lr.json (the suggestion alone), curve.json (the curve) and lr.svg, returns suggested_lr, and leaves its input model as it was', async () => {
    const before = await treeDigest(unfrozen);
    const { run, bytes, lr, file, files, svg, dir } = await findLr({ start_lr: 1e-6, end_lr: 10 });
    expect(await treeDigest(unfrozen)).toBe(before);
    expect(files).toEqual({ lr: ['lr.json'], curve: ['curve.json', 'lr.svg'] });
    expect(bytes).toBe(`{\n  "lr": ${lr}\n}\n`);
    expect(Object.keys(file)).toEqual(['suggest', 'start_lr', 'end_lr', 'iterations', 'batches', 'curve']);
    expect(file).toMatchObject({ suggest: 'valley', start_lr: 1e-6, end_lr: 10, iterations: 40 });
    expect(file.curve).toHaveLength(file.batches);
    expect(file.curve[0]!.lr).toBe(1e-6);
    expect(file.curve[0]!.smoothed).toBe(file.curve[0]!.loss);
    expect(lr).toBeGreaterThan(1e-6);
    expect(lr).toBeLessThan(10);
    expect(run.result).toMatchObject({ metrics: { suggested_lr: lr } });
    expect(await lrFind.summarize!({ params: run.result as never, outputs: { lr: dir } })).toEqual({ metrics: { suggested_lr: lr } });
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('smoothed loss');
  }, 60_000);

  it('raises the learning rate batch by batch, for adam and for sgd (whose rate lives in a tensor): the loss blows up at the top of the range', async () => {
    for (const optimizer of ['adam', 'sgd']) {
      const { file } = await findLr({ start_lr: 1e-4, end_lr: 1000, optimizer });
      const [first, last] = [file.curve[0]!, file.curve[file.curve.length - 1]!];
      expect(last.lr, optimizer).toBeGreaterThan(100);
      expect(last.loss, optimizer).toBeGreaterThan(4 * first.loss);
    }
  }, 60_000);

  it('writes the same bytes on one thread and on two', async () => {
    const one = await findLr({ iterations: 16 }, 1);
    const two = await findLr({ iterations: 16 }, 2);
    expect(two.run.recorded.infos).toContain('training on 2 threads, each batch shared between them');
    expect(two.bytes).toBe(one.bytes);
    expect(two.curveBytes).toBe(one.curveBytes);
    expect(two.svg).toBe(one.svg);
  }, 60_000);

  it('loads the train split alone: the val split\'s boundary activations would go unused', async () => {
    const { tf } = await loadBackend('wasm');
    const { model, metadata } = await loadModelArtifact(tf, unfrozen);
    const split = splitAtFirstTrainable(tf, model)!;
    const load = (trainOnly: boolean) => loadTrainingData({ tf, datasetDir: dataset, modelDir: unfrozen, metadata, lower: split.lower, backend: 'wasm', budget: 2 ** 30, requestedThreads: 1, signal: new AbortController().signal, trainOnly });
    try {
      const [all, trainOnly] = [await load(false), await load(true)];
      expect([all.train.count, all.val?.count]).toEqual([trainOnly.train.count, 30]);
      expect(trainOnly.val).toBeUndefined();
      tf.dispose([all.train.x, all.train.y, all.val!.x, all.val!.y, trainOnly.train.x, trainOnly.train.y]);
    } finally {
      model.dispose();
    }
  }, 60_000);

  it('refuses an end_lr not above start_lr', async () => {
    await expect(findLr({ start_lr: 0.1, end_lr: 0.01 })).rejects.toThrow('end_lr (0.01) must be above start_lr (0.1)');
  });

  it('probes a new head on features, built as train-head builds it; with batch statistics (batch_norm) on tfjs\'s trainOnBatch, repeatably', async () => {
    const params = { iterations: 30, layers: [{ dense: 16 }, { batch_norm: true }] };
    const probe = () => runStep(lrFind, params, { workdir, inputs: { features }, seed: 1, settings: { threads: 2 } });
    const [first, second] = [await probe(), await probe()];
    expect(first.recorded.infos).toContain('training on one thread: head_batch_norm_1 normalises with batch statistics');
    const [one, two] = [await outputsOf(first.outputs), await outputsOf(second.outputs)];
    expect(one.file.curve[0]!.loss).toBeGreaterThan(1); // a new head: about ln(10) on ten classes
    expect(one.lr).toBeGreaterThan(1e-7);
    expect([two.bytes, two.curveBytes]).toEqual([one.bytes, one.curveBytes]);
  }, 60_000);

  it('takes model and dataset, or features: anything else is the user\'s mistake', async () => {
    const message = 'lr-find takes either inputs model and dataset (a model with trainable layers) or input features (to probe a new head)';
    const wired = (inputs: Record<string, string>) => runStep(lrFind, {}, { workdir, inputs });
    await expect(wired({ model: unfrozen })).rejects.toThrow(message);
    await expect(wired({ model: unfrozen, dataset, features })).rejects.toThrow(message);
    await expect(wired({})).rejects.toThrow(message);
  });
});
