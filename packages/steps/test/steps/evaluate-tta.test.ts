import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { StepUserError, type StepResult } from '@headstart/core';
import type * as Tfjs from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLASSES_FILE, PREPROCESSING_FILE, SplitWriter } from '../../src/data/dataset.js';
import { toRgb } from '../../src/data/image.js';
import type { BaseRecipe } from '../../src/ml/features.js';
import { classificationReport } from '../../src/ml/metrics.js';
import { loadModelArtifact, saveModelArtifact, type ModelMetadata } from '../../src/ml/model-artifact.js';
import { predictImages } from '../../src/ml/predict.js';
import { loadBackend, type Tf } from '../../src/runtime/backend.js';
import { toModelInput, type Preprocessing } from '../../src/runtime/preprocessing.js';
import evaluate from '../../src/steps/evaluate.js';
import { runStep, tempDir } from '../data/fixtures.js';

/**
 * Test-time augmentation on a tiny convolutional model built here (6×6 RGB → 3 classes) and 48 random
 * images, labelled so that only the flip-averaged prediction gets every image right.
 */
const SIZE = 6;
const COUNT = 48;
const CLASSES = ['a', 'b', 'c'];
const PREPROCESSING: Preprocessing = { inputSize: SIZE, channels: 3, range: [-1, 1], resize: 'bilinear' };

let tf: Tf;
let workdir: string;
let modelDir: string;
let dataset: string;
let images: Uint8Array;
let labels: Int32Array;
let plain: Float32Array;
let averaged: Float32Array;

/** Deterministic pseudo-random bytes (a linear congruential generator). */
function randomBytes(length: number, seed: number): Uint8Array {
  let state = seed;
  return Uint8Array.from({ length }, () => (state = (state * 1103515245 + 12345) >>> 0) >>> 24);
}

/** The images mirrored left to right, pixel by pixel, in plain JS: [count, size, size, 3]. */
function mirrored(pixels: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const from = ((n * SIZE + y) * SIZE + x) * 3;
        out.set(pixels.subarray(from, from + 3), ((n * SIZE + y) * SIZE + (SIZE - 1 - x)) * 3);
      }
    }
  }
  return out;
}

/** The model's softmax on `pixels`, computed here from the saved model, not through headstart's prediction code. */
async function softmaxOn(pixels: Uint8Array, count: number): Promise<Float32Array> {
  const { model } = await loadModelArtifact(tf, modelDir);
  const output = tf.tidy(() => model.predict(toModelInput(tf, tf.tensor4d(pixels, [count, SIZE, SIZE, 3], 'int32'), PREPROCESSING)) as Tfjs.Tensor);
  const data = (await output.data()) as Float32Array;
  output.dispose();
  model.dispose();
  return data;
}

function argmaxRows(probabilities: Float32Array): Int32Array {
  return Int32Array.from({ length: probabilities.length / CLASSES.length }, (_, row) => {
    const scores = probabilities.subarray(row * CLASSES.length, (row + 1) * CLASSES.length);
    return scores.indexOf(Math.max(...scores));
  });
}

async function tinyModel(dir: string): Promise<void> {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [SIZE, SIZE, 3], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
      tf.layers.flatten(),
      tf.layers.dense({ units: CLASSES.length, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
    ],
  });
  const base = { ref: 'tiny', inputSize: SIZE, info: {}, imageDecoding: { size: SIZE, fit: 'fill', background: 'white' } } as unknown as BaseRecipe;
  const metadata: ModelMetadata = { classes: CLASSES, preprocessing: PREPROCESSING, base, headLayers: [], binary: false };
  await saveModelArtifact(model, dir, metadata);
  model.dispose();
}

async function writeDataset(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, CLASSES_FILE), JSON.stringify(CLASSES));
  const preprocessing = { size: SIZE, channels: 3, dtype: 'uint8', layout: 'NHWC', normalization: '[-1,1]', range: [-1, 1], fit: 'fill', background: 'white', resize: 'lanczos3', splits: { test: COUNT }, augment: null, seed: 0 };
  await writeFile(path.join(dir, PREPROCESSING_FILE), JSON.stringify(preprocessing));
  const writer = await SplitWriter.create(dir, 'test', SIZE);
  await writer.append(images, labels);
  await writer.close();
}

beforeAll(async () => {
  ({ tf } = await loadBackend());
  workdir = await tempDir('headstart-tta-');
  modelDir = path.join(workdir, 'model');
  dataset = path.join(workdir, 'dataset');
  await tinyModel(modelDir);
  images = randomBytes(COUNT * SIZE * SIZE * 3, 11);
  plain = await softmaxOn(images, COUNT);
  const flipped = await softmaxOn(mirrored(images, COUNT), COUNT);
  averaged = Float32Array.from(plain, (p, i) => (p + flipped[i]!) / 2);
  labels = argmaxRows(averaged);
  await writeDataset(dataset);
});

async function evaluated(params: Record<string, unknown>, threads = 1) {
  const run = await runStep(evaluate, { split: 'test', ...params }, { workdir, inputs: { model: modelDir, dataset }, settings: { threads } });
  // evaluate always returns a result (metrics, info); `void` is only in the general step type.
  return { ...run, result: run.result as StepResult, bytes: await readFile(path.join(run.outputs['metrics']!, 'metrics.json'), 'utf8') };
}

describe('evaluate with test-time augmentation', () => {
  it('labels the fixture so that the plain and the flip-averaged predictions disagree', () => {
    expect(argmaxRows(plain)).not.toEqual(labels);
  });

  it('without tta, writes the plain model\'s metrics, the same bytes with tta.flip false', async () => {
    const absent = await evaluated({});
    expect(absent.bytes).toBe(`${JSON.stringify({ split: 'test', ...classificationReport(labels, plain, CLASSES, 3) }, null, 2)}\n`);
    expect((await evaluated({ tta: { flip: false } })).bytes).toBe(absent.bytes);
    expect(Object.keys(absent.result.metrics!)).not.toContain('tta_accuracy');
  });

  it('with flip, adds the accuracy of the mean of the outputs on the images and their mirror images; the rest stays the plain model\'s', async () => {
    const absent = await evaluated({});
    const { bytes, result, recorded } = await evaluated({ tta: { flip: true } });
    const { tta, tta_accuracy, tta_top_k_accuracy, ...rest } = JSON.parse(bytes) as Record<string, unknown>;
    expect(`${JSON.stringify(rest, null, 2)}\n`).toBe(absent.bytes);
    const expected = classificationReport(labels, averaged, CLASSES, 3);
    expect({ tta, tta_accuracy, tta_top_k_accuracy }).toEqual({ tta: { flip: true }, tta_accuracy: 1, tta_top_k_accuracy: expected.top_k_accuracy });
    expect(rest['accuracy']).toBeLessThan(1);
    expect(result.metrics).toMatchObject({ accuracy: Math.round((rest['accuracy'] as number) * 10000) / 10000, tta_accuracy: 1 });
    expect(recorded.infos).toContain('test with test-time augmentation (flip): accuracy 1.0000, top-3 1.0000');
  });

  it('is the same bytes on two prediction threads', async () => {
    const one = await evaluated({ tta: { flip: true }, batch_size: 2 });
    const two = await evaluated({ tta: { flip: true }, batch_size: 2 }, 2);
    expect(two.result.info).toMatchObject({ threads: 2 });
    expect(two.bytes).toBe(one.bytes);
  });

  it('gates on tta_accuracy, and refuses a gate on it without tta', async () => {
    const { result } = await evaluated({ tta: { flip: true }, fail_under: { tta_accuracy: 0.5, accuracy: 0.999 } });
    expect(result.failedChecks).toEqual([expect.stringMatching(/^accuracy 0\.\d{4} on the test split is below fail_under 0\.999$/)]);
    await expect(evaluated({ fail_under: { tta_accuracy: 0.5 } })).rejects.toThrow(new StepUserError('fail_under.tta_accuracy needs test-time augmentation: add `tta: { flip: true }`'));
    await expect(evaluated({ tta: { flip: false }, max_drop: { tta_top_k_accuracy: 0.1 } })).rejects.toThrow(/^max_drop\.tta_top_k_accuracy needs test-time augmentation/);
  });
});

describe('predict with test-time augmentation', () => {
  it('reports each image\'s mean of the probabilities on it and on its mirror image, on two threads too', async () => {
    const PHOTOS = 8; // two threads take batches of one from 8 images
    const folder = path.join(workdir, 'photos');
    await mkdir(folder);
    const files: string[] = [];
    for (let n = 0; n < PHOTOS; n++) {
      const file = path.join(folder, `${n}.png`);
      await sharp(Buffer.from(images.subarray(n * SIZE * SIZE * 3, (n + 1) * SIZE * SIZE * 3)), { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toFile(file);
      files.push(file);
    }
    const decoded = new Uint8Array(PHOTOS * SIZE * SIZE * 3);
    for (const [n, file] of files.entries()) decoded.set(await toRgb(await readFile(file), { size: SIZE, fit: 'fill', background: 'white' }), n * SIZE * SIZE * 3);
    const [onImages, onMirrors] = [await softmaxOn(decoded, PHOTOS), await softmaxOn(mirrored(decoded, PHOTOS), PHOTOS)];
    const probabilitiesBy = (summary: Awaited<ReturnType<typeof predictImages>>) => summary.predictions.map((p) => CLASSES.map((c) => p.top.find((score) => score.class === c)!.probability));
    const rows = (values: Float32Array) => files.map((_, n) => [...values.subarray(n * 3, n * 3 + 3)]);
    expect(probabilitiesBy(await predictImages({ model: modelDir, paths: [folder] }))).toEqual(rows(onImages));
    const withTta = await predictImages({ model: modelDir, paths: [folder], tta: { flip: true }, settings: { threads: 2 }, batchSize: 1 });
    expect(withTta.threads).toBe(2);
    expect(probabilitiesBy(withTta)).toEqual(rows(Float32Array.from(onImages, (p, i) => (p + onMirrors[i]!) / 2)));
    expect(onMirrors).not.toEqual(onImages);
  });
});
