import { copyFile } from 'node:fs/promises';
import { defineStep } from '@headstart/core';
import { SPLITS, openSplit, readPreprocessing, splitFiles, type Split, type SplitBatch } from '../data/dataset.js';
import { featureFiles, prepareSplitDir, writeFeatureMetadata } from '../ml/features.js';
import { PredictionPool, predictionThreads } from '../ml/prediction-pool.js';
import { backendSetting, loadBackend, type Tf } from '../runtime/backend.js';
import type { FrozenBase } from '../runtime/base-model.js';
import { checkMemory, defaultMemoryBudget, tensorBytes } from '../runtime/memory.js';
import { NpyWriter } from '../runtime/npy.js';
import { toModelInput } from '../runtime/preprocessing.js';
import { loadFrozenBase, type LoadBaseOptions } from '../runtime/zoo.js';

interface Params {
  base: string;
  sha256?: string;
  layer?: string;
  pooling: 'avg' | 'none';
  batch_size: number;
  splits?: Split[];
}

export default defineStep<Params>({
  name: 'extract-features',
  version: '2',
  description: 'Runs the frozen pretrained base over every split once and stores its features as .npy',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      base: { type: 'string', default: 'mobilenet_v2', description: 'mobilenet_v2, inception_v3, mnist_cnn, mobilenet_v2_mid (a graph model), file:path/to/model.json or https://…/model.json: a tfjs layers model, or a graph model (TF Hub / Kaggle format), which stays frozen' },
      sha256: { type: 'string', pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of model.json followed by its weight files in manifest order (cat model.json <shards> | sha256sum); required for an https base' },
      layer: { type: 'string', description: 'cut the base at this layer (default: its last conv activation); for a graph model, the output node (its full name or a unique tail such as Conv_1/Relu6; default: MobilenetV2/Conv_1/Relu6 for mobilenet_v2_mid, the model\'s output for a file or https one)' },
      pooling: { enum: ['avg', 'none'], default: 'avg', description: 'global average pooling after the cut (none keeps the feature maps)' },
      batch_size: { type: 'integer', minimum: 1, maximum: 1024, default: 32 },
      splits: { type: 'array', items: { enum: [...SPLITS] }, uniqueItems: true, description: 'default: every split the dataset has' },
    },
  },
  inputs: ['dataset'],
  outputs: ['features'],
  async run(ctx) {
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const dataset = ctx.inputs['dataset']!;
    const out = ctx.outputs['features']!;
    const preprocessing = await readPreprocessing(dataset);
    const baseOptions: Omit<LoadBaseOptions, 'signal' | 'log'> = {
      cacheDir: ctx.cacheDir,
      baseDir: ctx.workdir,
      inputSize: preprocessing.size,
      pooling: ctx.params.pooling,
      ...(ctx.params.sha256 ? { sha256: ctx.params.sha256 } : {}),
      ...(ctx.params.layer ? { layer: ctx.params.layer } : {}),
    };
    const base = await loadFrozenBase(tf, ctx.params.base, { ...baseOptions, signal: ctx.signal, log: (line) => ctx.log.info(line) });
    const splits = ctx.params.splits ?? SPLITS.filter((split) => preprocessing.splits[split]);
    const total = splits.reduce((sum, split) => sum + (preprocessing.splits[split] ?? 0), 0);
    const threads = predictionThreads(total, ctx.params.batch_size, ctx.settings.threads);
    const pool = threads > 1 ? await PredictionPool.start(threads, { backend, model: { kind: 'base', ref: ctx.params.base, options: baseOptions }, size: preprocessing.size, batchSize: ctx.params.batch_size }) : undefined;
    try {
      const budget = defaultMemoryBudget(backend);
      const featuresOf = (batches: AsyncIterable<SplitBatch>, size: number) => (pool ? pool.predict(batches, ctx.signal) : extractHere(tf, base, batches, size, ctx.params.batch_size, budget, ctx.signal));
      let done = 0;
      const started = performance.now();
      for (const split of splits) {
        const offset = done;
        done += await extractSplit(featuresOf, base.info.featureShape, dataset, out, split, ctx.params.batch_size, (n) => ctx.progress(offset + n, total, 'images'));
      }
      const seconds = (performance.now() - started) / 1000;
      ctx.log.info(`${done} images through ${ctx.params.base} (cut at ${base.info.layer}, features ${base.info.featureShape.join('×')}) in ${seconds.toFixed(1)} s, ${(done / seconds).toFixed(1)} images/s on ${backend}${pool ? ` × ${threads} threads` : ''}`);
      await writeFeatureMetadata(out, dataset, { ref: ctx.params.base, ...(ctx.params.sha256 ? { sha256: ctx.params.sha256 } : {}), inputSize: preprocessing.size, info: base.info, imageDecoding: { size: preprocessing.size, fit: preprocessing.fit, background: preprocessing.background } });
      return { info: { backend, threads }, metrics: { images_per_second: Math.round((done / seconds) * 10) / 10 } };
    } finally {
      await pool?.close();
      base.dispose();
    }
  },
});

type FeaturesOf = (batches: AsyncIterable<SplitBatch>, size: number) => AsyncIterable<Float32Array>;

/** Streams one split's features, in order, into `<out>/<split>/features.npy`. */
async function extractSplit(featuresOf: FeaturesOf, featureShape: number[], dataset: string, out: string, split: Split, batchSize: number, progress: (doneInSplit: number) => void): Promise<number> {
  const source = await openSplit(dataset, split);
  await prepareSplitDir(out, split);
  const files = featureFiles(out, split);
  const writer = await NpyWriter.create(files.features, { dtype: 'float32', shape: [null, ...featureShape] });
  const rowSize = featureShape.reduce((a, b) => a * b, 1);
  let done = 0;
  try {
    for await (const features of featuresOf(source.batches(batchSize), source.size)) {
      await writer.append(features);
      done += features.length / rowSize;
      progress(done);
    }
    await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
  await copyFile(splitFiles(dataset, split).labels, files.labels);
  return done;
}

/** The single-thread path: the base in this thread, a batch at a time. */
async function* extractHere(tf: Tf, base: FrozenBase, batches: AsyncIterable<SplitBatch>, size: number, batchSize: number, budget: number, signal: AbortSignal): AsyncGenerator<Float32Array> {
  for await (const batch of batches) {
    signal.throwIfAborted();
    checkMemory(tf, budget, tensorBytes([batch.count, size, size, 3]) * 3, `a batch of ${batch.count} images`);
    const features = tf.tidy(() => {
      const pixels = tf.tensor4d(batch.images, [batch.count, size, size, 3], 'int32');
      return base.predict(toModelInput(tf, pixels, base.preprocessing), batchSize);
    });
    const data = (await features.data()) as Float32Array;
    features.dispose();
    yield data;
  }
}
