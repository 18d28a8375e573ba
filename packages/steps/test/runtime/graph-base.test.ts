import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '@headstart/core';
import type { BaseRecipe } from '../../src/ml/features.js';
import { loadModelArtifact, loadPredictor, saveGraphBasedArtifact, type ModelMetadata } from '../../src/ml/model-artifact.js';
import { GraphBase, loadBase, loadFrozenBase, nsfwjsCacheDir, RuntimeUserError } from '../../src/runtime/index.js';
import { tempDir, wasm } from './helpers.js';

/**
 * A real third-party graph model: nsfwjs's `mobilenet_v2_mid` (a TF Hub MobileNetV2 1.4 saved as a
 * tfjs graph model), on the wasm backend.
 */
const tf = await wasm();
const cacheDir = await tempDir();
const TAIL = 'MobilenetV2/Conv_1/Relu6';

async function values(tensor: Tensor): Promise<number[]> {
  const data = Array.from(await tensor.data());
  tensor.dispose();
  return data;
}

function images(count: number, size: number, seed = 3): Tensor {
  return tf.randomUniform([count, size, size, 3], 0, 1, 'float32', seed);
}

function maxDifference(a: number[], b: number[]): number {
  expect(a).toHaveLength(b.length);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
}

describe('a tfjs graph model as a frozen base', () => {
  it('runs mobilenet_v2_mid at 64 px up to its last conv activation, pooled to 1792 features', async () => {
    const base = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, inputSize: 64 });
    expect(base).toBeInstanceOf(GraphBase);
    expect(base.info.layer.endsWith(`/${TAIL}`)).toBe(true);
    expect(base.info).toMatchObject({ source: 'mobilenet_v2_mid', pooling: 'avg', featureShape: [1792] });
    expect(base.preprocessing).toEqual({ inputSize: 64, channels: 3, range: [0, 1], resize: 'bilinear' });
    const x = images(5, 64);
    const whole = await values(base.predict(x));
    const chunked = await values(base.predict(x, 2)); // three chunks, concatenated in order
    x.dispose();
    expect(whole).toHaveLength(5 * 1792);
    expect(maxDifference(chunked, whole)).toBeLessThan(1e-5);
    base.dispose();
  });

  it('pools exactly as the graph does: our mean of Conv_1 equals its own 7×7 AvgPool at 224 px', async () => {
    const ours = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir });
    const theirs = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, layer: 'MobilenetV2/Logits/AvgPool', pooling: 'none' });
    expect(theirs.info.featureShape).toEqual([1, 1, 1792]);
    const x = images(2, 224);
    const [a, b] = [await values(ours.predict(x)), await values(theirs.predict(x))];
    x.dispose();
    expect(maxDifference(a, b)).toBeLessThan(1e-4);
    ours.dispose();
    theirs.dispose();
  });

  it('with include_top, its output is the model\'s own: the 5-class nsfw softmax', async () => {
    const top = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, includeTop: true });
    expect(top.info).toMatchObject({ layer: 'Identity:0', pooling: 'none', featureShape: [5] });
    const x = images(1, 224);
    const probabilities = await values(top.predict(x));
    x.dispose();
    expect(probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    top.dispose();
  });

  it('names what is wrong with a node, and refuses to be joined to a head for training', async () => {
    const unknown = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, inputSize: 64, layer: 'MobilenetV2/Conv_1/Relu7' }).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(RuntimeUserError);
    expect((unknown as Error).message).toMatch(/^the graph model has no node "MobilenetV2\/Conv_1\/Relu7"/);
    const ambiguous = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, inputSize: 64, layer: 'Relu6' }).catch((e: unknown) => e);
    expect((ambiguous as Error).message).toMatch(/^"Relu6" ends \d+ node names of the graph model .*: give more of its path$/);
    await expect(loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, inputSize: 16 })).rejects.toThrow(/input_size 16 does not suit mobilenet_v2_mid/);
    await expect(loadBase(tf, 'mobilenet_v2_mid', { cacheDir })).rejects.toThrow(
      'the base mobilenet_v2_mid is a TensorFlow.js graph model, and graph models cannot be trained (their weights are graph constants): use a layers model as the base to unfreeze or fine-tune it',
    );
  });
});

describe('a graph model from a URL pinned by sha256, or a file', () => {
  const served = path.join(cacheDir, 'www');
  let server: Server;
  let origin: string;
  let pin: string;

  beforeAll(async () => {
    // Publish the converted nsfwjs files as a model host would: model.json and one weights file.
    (await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, inputSize: 32 })).dispose();
    const converted = nsfwjsCacheDir(cacheDir, 'mobilenet_v2_mid');
    const [json, weights] = await Promise.all([readFile(path.join(converted, 'model.json')), readFile(path.join(converted, 'weights.bin'))]);
    await mkdir(path.join(served, 'g'), { recursive: true });
    await writeFile(path.join(served, 'g', 'model.json'), json);
    await writeFile(path.join(served, 'g', 'weights.bin'), weights);
    pin = sha256(Buffer.concat([json, weights]));
    server = createServer((req, res) => {
      readFile(path.join(served, decodeURIComponent(req.url ?? '/')))
        .then((body) => res.writeHead(200).end(body))
        .catch(() => res.writeHead(404).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('downloads it, verified, and computes what the zoo name does; file: likewise', async () => {
    const options = { cacheDir, inputSize: 48, layer: TAIL };
    const remote = await loadFrozenBase(tf, `${origin}/g/model.json`, { ...options, sha256: pin });
    const local = await loadFrozenBase(tf, 'file:www/g/model.json', { ...options, baseDir: cacheDir });
    const zoo = await loadFrozenBase(tf, 'mobilenet_v2_mid', { cacheDir, inputSize: 48 });
    const x = images(2, 48);
    const [a, b, c] = [await values(remote.predict(x)), await values(local.predict(x)), await values(zoo.predict(x))];
    x.dispose();
    expect(remote.info.featureShape).toEqual([1792]);
    expect(a).toEqual(c);
    expect(b).toEqual(c);
    for (const base of [remote, local, zoo]) base.dispose();
    await expect(loadFrozenBase(tf, `${origin}/g/model.json`, { cacheDir })).rejects.toThrow(/needs its sha256 pinned/);
  });

  it('a head on its features is saved beside a copy of it, and predicts as base then head', async () => {
    const base = await loadFrozenBase(tf, `${origin}/g/model.json`, { cacheDir, sha256: pin, inputSize: 32, layer: TAIL });
    if (!(base instanceof GraphBase)) throw new Error('expected a graph base');
    const head = tf.sequential({ layers: [tf.layers.dense({ inputShape: [1792], units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'head_output' })] });
    const recipe: BaseRecipe = { ref: `${origin}/g/model.json`, sha256: pin, inputSize: 32, info: base.info };
    const metadata: ModelMetadata = { classes: ['a', 'b', 'c'], preprocessing: base.preprocessing, base: recipe, headLayers: ['head_output'], binary: false };
    const dir = path.join(cacheDir, 'artifact');
    await saveGraphBasedArtifact(head, dir, metadata, base);
    server.close(); // the artifact needs nothing from the network
    const x = images(3, 32);
    const expected = await values(tf.tidy(() => head.predict(base.predict(x)) as Tensor));
    const predictor = await loadPredictor(tf, dir);
    expect(predictor.metadata.graphBase).toBe('base');
    const actual = await values(predictor.predict(x));
    x.dispose();
    expect(maxDifference(actual, expected)).toBeLessThan(1e-5);
    predictor.dispose();
    base.dispose();
    head.dispose();
    await expect(loadModelArtifact(tf, dir)).rejects.toThrow(/graph models cannot be trained/);
  });
});
