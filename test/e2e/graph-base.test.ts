import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

/**
 * A real third-party tfjs graph model as a frozen base: nsfwjs's mobilenet_v2_mid (TF Hub format), by
 * its zoo name and from a local HTTP server pinned by sha256, through extract-features, train-head,
 * evaluate, predict and export; and unfreeze / fine-tune on it refused in one line.
 */
const SIZE = 32;
const CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const TAIL = 'MobilenetV2/Conv_1/Relu6';

interface Prediction {
  path: string;
  top: { class: string; probability: number }[];
}

function pipeline(name: string, features: string, extra = ''): string {
  return `name: ${name}
seed: 7
stages:
  data: { uses: load-data, with: { source: image-folder, path: data } }
  prep: { uses: preprocess, inputs: { dataset: data.dataset }, with: { size: ${SIZE}, val_from_train: 0.2 } }
  features:
    uses: extract-features
    inputs: { dataset: prep.dataset }
    with: ${features}
  head: { uses: train-head, inputs: { features: features.features }, with: { epochs: 4, layers: [] } }
  eval: { uses: evaluate, inputs: { model: head.model, dataset: prep.dataset }, with: { split: test } }
${extra}`;
}

let rig: Rig;
let server: Server;
let origin: string;
/** The first run's output, on two threads. */
let firstRun: string;

/** MNIST digits re-encoded at 32×32 (6 train, 6 test per class), so images need no resizing. */
async function writeDigits(): Promise<void> {
  expect((await rig.run('data', 'export', 'mnist', '--out', 'raw', '--per-class', '6')).exitCode).toBe(0);
  for (const split of ['train', 'test']) {
    for (const label of CLASSES) {
      mkdirSync(join(rig.dir, 'data', split, label), { recursive: true });
      for (const file of readdirSync(join(rig.dir, 'raw', split, label))) {
        await sharp(join(rig.dir, 'raw', split, label, file)).resize(SIZE, SIZE).greyscale().png().toFile(join(rig.dir, 'data', split, label, file));
      }
    }
  }
}

/** Serves the zoo's converted copy of mobilenet_v2_mid, as a model host would; returns its pin. */
async function serveConvertedModel(): Promise<string> {
  const zoo = join(rig.dir, '.headstart', 'cache', 'zoo');
  const converted = join(zoo, readdirSync(zoo).find((name) => name.startsWith('mobilenet_v2_mid-nsfwjs-'))!);
  const files = new Map(['model.json', 'weights.bin'].map((name) => [`/g/${name}`, readFileSync(join(converted, name))]));
  server = createServer((req, res) => {
    const body = files.get(req.url ?? '');
    if (body) res.writeHead(200).end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return createHash('sha256').update(files.get('/g/model.json')!).update(files.get('/g/weights.bin')!).digest('hex');
}

function evalAccuracy(lock: string): number {
  return (rig.lockfile(lock) as unknown as { stages: Record<string, { metrics: Record<string, number> }> }).stages['eval']!.metrics['accuracy']!;
}

beforeAll(async () => {
  rig = new Rig();
  await writeDigits();
  rig.write('zoo.yaml', pipeline('zoo', '{ base: mobilenet_v2_mid, splits: [test] }'));
  const zoo = await rig.run('run', 'zoo.yaml', '--stage', 'features');
  expect(zoo.exitCode, zoo.stderr).toBe(0);
  expect(zoo.stdout).toMatch(/60 images through mobilenet_v2_mid \(cut at .*\/MobilenetV2\/Conv_1\/Relu6, features 1792\)/);
  const pin = await serveConvertedModel();
  rig.write('headstart.yaml', pipeline('url', `{ base: "${origin}/g/model.json", sha256: ${pin}, layer: ${TAIL}, batch_size: 4 }`));
  const url = await rig.run('run', '--workers', '2');
  expect(url.exitCode, url.stderr).toBe(0);
  firstRun = url.stdout;
}, 180_000);
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function predictJson(...args: string[]): Promise<Prediction[]> {
  const result = await rig.run('predict', '--json', ...args);
  expect(result.exitCode, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Prediction[];
}

describe('a graph model as the base', () => {
  it('from a pinned URL trains a head on its features that beats chance', () => {
    expect(firstRun).toMatch(/120 images through http:.* features 1792\) in .* images\/s on wasm × 2 threads/);
    expect(evalAccuracy('headstart.lock')).toBeGreaterThan(0.15); // 10 classes: chance is 0.1
  });

  it('predicts base then head, as evaluate did, on one thread or two', async () => {
    const predictions = await predictJson('--model', 'head', '--workers', '1', '--top-k', '10', 'data/test');
    expect(predictions).toHaveLength(60);
    const correct = predictions.filter((p) => p.top[0]!.class === p.path.split('/')[2]).length;
    expect(correct / predictions.length).toBeCloseTo(evalAccuracy('headstart.lock'), 4); // the lock rounds to 4 places
    const pooled = await rig.run('predict', '--json', '--model', 'head', '--workers', '2', '--batch-size', '4', '--top-k', '10', 'data/test');
    expect(pooled.stderr).toContain('60 images on the wasm backend (2 threads)');
    expect(JSON.parse(pooled.stdout)).toEqual(predictions);
  });

  it('exports the graph beside the head; plain TensorFlow.js runs the two as the README says', async () => {
    const exported = await rig.run('export', '--stage', 'head', '--out', 'web');
    expect(exported.exitCode, exported.stderr).toBe(0);
    const readme = rig.read('web/README.md');
    expect(readme).toContain('tf.loadGraphModel(`${base}/base/model.json`)');
    const node = /graph\.execute\(input, '([^']+)'\)\.mean\(\[1, 2\]\)/.exec(readme)?.[1];
    expect(node?.endsWith(`/${TAIL}`)).toBe(true);
    const images = ['data/test/2', 'data/test/5'].map((folder) => join(folder, readdirSync(join(rig.dir, folder)).sort()[0]!));
    const expected = await predictJson('--model', 'head', '--top-k', '10', ...images);
    expect(await predictJson('--model', 'web', '--top-k', '10', ...images)).toEqual(expected);
    const probabilities = await plainTfjsPredict(images, node!);
    const labels = JSON.parse(rig.read('web/labels.json')) as string[];
    expected.forEach((prediction, i) => {
      for (const score of prediction.top) expect(Math.abs(probabilities[i]![labels.indexOf(score.class)]! - score.probability)).toBeLessThan(1e-3);
    });
  });

  it('cannot be unfrozen or fine-tuned: each stage exits 2 in one line, and nothing is cached', async () => {
    const refusal = `the base ${origin}/g/model.json is a TensorFlow.js graph model, and graph models cannot be trained (their weights are graph constants): use a layers model as the base to unfreeze or fine-tune it`;
    for (const stage of [
      'unfreeze: { uses: unfreeze, inputs: { model: head.model }, with: { last: 5 } }',
      'tune: { uses: fine-tune, inputs: { model: head.model, dataset: prep.dataset }, with: { epochs: 1 } }',
    ]) {
      rig.write('train.yaml', pipeline('url', `{ base: "${origin}/g/model.json", sha256: ${pinOf()}, layer: ${TAIL} }`, `  ${stage}\n`));
      const result = await rig.run('run', 'train.yaml');
      expect(result.exitCode, result.stderr).toBe(2);
      expect(result.stderr.trim().split('\n').at(-1)).toBe(`stage "${stage.split(':')[0]}" failed: ${refusal}`);
      expect(Object.keys(rig.lockfile('train.lock').stages).sort()).toEqual(['data', 'eval', 'features', 'head', 'prep']);
    }
  });
});

describe('graph features on prediction threads', () => {
  it('are the bytes one thread gives', async () => {
    const featuresHash = () => (rig.lockfile().stages['features'] as unknown as { outputs: Record<string, { hash: string }> }).outputs['features']!.hash;
    const onTwoThreads = featuresHash();
    const result = await rig.run('run', '--stage', 'features', '--force', 'features', '--workers', '1');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).not.toContain('threads');
    expect(featuresHash()).toBe(onTwoThreads);
  });
});

function pinOf(): string {
  return /sha256: ([0-9a-f]{64})/.exec(rig.read('headstart.yaml'))![1]!;
}

/**
 * What a user of the export does with nothing from headstart: the graph model and the head loaded by
 * plain tfjs on the cpu backend, the README's two calls, and preprocessing.json's scaling by hand
 * (the images are already 32×32 and gray, so R = G = B).
 */
async function plainTfjsPredict(images: string[], node: string): Promise<number[][]> {
  await tf.setBackend('cpu');
  const graph = await tf.loadGraphModel(tf.io.fromMemory(modelArtifacts('web/base')));
  const head = await tf.loadLayersModel(tf.io.fromMemory(modelArtifacts('web')));
  const pixels: number[] = [];
  for (const image of images) {
    const { data } = await sharp(join(rig.dir, image)).greyscale().raw().toBuffer({ resolveWithObject: true });
    for (const gray of data) pixels.push(gray / 255, gray / 255, gray / 255);
  }
  const probabilities = tf.tidy(() => {
    const input = tf.tensor4d(pixels, [images.length, SIZE, SIZE, 3]);
    const features = (graph.execute(input, node) as tf.Tensor).mean([1, 2]);
    return head.predict(features) as tf.Tensor2D;
  });
  const rows = (await probabilities.array()) as number[][];
  probabilities.dispose();
  graph.dispose();
  head.dispose();
  return rows;
}

function modelArtifacts(dir: string): tf.io.ModelArtifacts {
  const json = JSON.parse(rig.read(join(dir, 'model.json'))) as tf.io.ModelJSON;
  const weights = readFileSync(join(rig.dir, dir, json.weightsManifest[0]!.paths[0]!));
  const { weightsManifest, ...rest } = json;
  return { ...rest, weightSpecs: weightsManifest.flatMap((group) => group.weights), weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) };
}
