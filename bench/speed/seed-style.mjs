#!/usr/bin/env node
// The "seed-style" recipe: the flagship (Fashion-MNIST PNG folder → MobileNetV2 at 96 px → a new head →
// blocks 10-16 unfrozen and fine-tuned → accuracy on test) as one plain TensorFlow.js script, the way
// the Keras transfer-learning tutorial writes it: decode every image, build base + head, `model.fit`
// on the images with the base frozen, unfreeze from block_10_expand, recompile, `model.fit` again,
// `model.evaluate` on test. No cache, no cached features, no worker threads, one wasm thread.
//
//   node bench/speed/seed-style.mjs --data DIR [--size 96] [--head-epochs 15] [--ft-epochs 5] [--val 0.1]
//
// DIR is what `headstart data export fashion-mnist --out DIR` writes (train/<class>/*.png, test/...).
// To be a fair opponent it borrows three things from headstart's runtime: the wasm backend loader,
// the offline zoo's MobileNetV2 (nsfwjs, cut at out_relu + global average pooling, like Keras
// include_top=False, pooling='avg'), and the wasm training kernels (without the missing gradients
// stock wasm cannot fine-tune a depthwise conv at all), plus BatchNormalization forced into inference
// mode as Keras's recipe has it (tfjs-layers would otherwise train on batch statistics). So the
// per-step math is headstart's; what differs is the recipe. Prints one JSON line (seconds per phase).
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const started = performance.now();
const here = path.dirname(fileURLToPath(import.meta.url));
const steps = path.resolve(here, '../../packages/steps');
const require = createRequire(path.join(steps, 'package.json'));
const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    size: { type: 'string', default: '96' },
    'head-epochs': { type: 'string', default: '15' },
    'ft-epochs': { type: 'string', default: '5' },
    val: { type: 'string', default: '0.1' },
    batch: { type: 'string', default: '32' },
    seed: { type: 'string', default: '42' },
    'cache-dir': { type: 'string' },
  },
});
if (!values.data) throw new Error('--data DIR is required');
const SIZE = Number(values.size);
const BATCH = Number(values.batch);
const seconds = (since) => (performance.now() - since) / 1000;

const rt = await import(path.join(steps, 'dist/runtime/index.js'));
const sharp = require('sharp');
const { tf } = await rt.loadBackend('wasm');
rt.registerWasmKernels(tf);

// --- the data: every PNG decoded and resized to SIZE × SIZE RGB, scaled to [0, 1] ---------------
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function listSplit(split) {
  const dir = path.join(values.data, split);
  const classes = readdirSync(dir).sort();
  return { classes, files: classes.flatMap((name, label) => readdirSync(path.join(dir, name)).sort().map((file) => ({ file: path.join(dir, name, file), label }))) };
}

async function decode(items, classCount) {
  const pixels = new Uint8Array(items.length * SIZE * SIZE * 3);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      const rgb = await sharp(readFileSync(items[i].file)).resize(SIZE, SIZE, { fit: 'fill' }).toColourspace('srgb').removeAlpha().raw().toBuffer();
      pixels.set(rgb, i * SIZE * SIZE * 3);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  const x = tf.tidy(() => tf.tensor4d(pixels, [items.length, SIZE, SIZE, 3], 'int32').toFloat().div(255));
  const y = tf.oneHot(tf.tensor1d(items.map((item) => item.label), 'int32'), classCount).toFloat();
  return { x, y, count: items.length };
}

const timings = {};
let t = performance.now();
const train = listSplit('train');
const random = mulberry32(Number(values.seed));
const shuffled = train.files.map((item) => ({ item, key: random() })).sort((a, b) => a.key - b.key).map((e) => e.item);
const valCount = new Map();
const perClass = train.files.length / train.classes.length;
const valItems = [];
const trainItems = [];
for (const item of shuffled) { // stratified: the same fraction of every class goes to val
  const taken = valCount.get(item.label) ?? 0;
  if (taken < Math.round(perClass * Number(values.val))) {
    valCount.set(item.label, taken + 1);
    valItems.push(item);
  } else trainItems.push(item);
}
const classCount = train.classes.length;
const [xyTrain, xyVal, xyTest] = [await decode(trainItems, classCount), await decode(valItems, classCount), await decode(listSplit('test').files, classCount)];
timings.load_data = seconds(t);

// --- base + head ---------------------------------------------------------------------------------
t = performance.now();
const cacheDir = values['cache-dir'] ?? path.join(os.tmpdir(), 'headstart-seed-style-zoo');
const base = await rt.loadBase(tf, 'mobilenet_v2', { cacheDir, inputSize: SIZE });
let h = base.model.outputs[0];
h = tf.layers.dense({ units: 128, activation: 'relu', name: 'head_dense' }).apply(h);
h = tf.layers.dropout({ rate: 0.2, name: 'head_dropout' }).apply(h);
const output = tf.layers.dense({ units: classCount, activation: 'softmax', name: 'head_output' }).apply(h);
const model = tf.model({ inputs: base.model.inputs, outputs: output });
const headLayers = new Set(['head_dense', 'head_dropout', 'head_output']);
for (const layer of model.layers) layer.trainable = headLayers.has(layer.name);
rt.freezeBatchNorm(model, 'always');
timings.build_model = seconds(t);

const fitOptions = (epochs) => ({ epochs, batchSize: BATCH, shuffle: true, verbose: 0, validationData: [xyVal.x, xyVal.y] });
const epochLog = (phase) => ({ onEpochEnd: (epoch, logs) => process.stderr.write(`${phase} epoch ${epoch + 1}: loss ${logs.loss.toFixed(4)} val_acc ${(logs.val_acc ?? logs.val_accuracy ?? NaN).toFixed(4)}\n`) });

// --- phase 1: the head, base frozen, on the images -----------------------------------------------
t = performance.now();
model.compile({ optimizer: tf.train.adam(0.001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
await model.fit(xyTrain.x, xyTrain.y, { ...fitOptions(Number(values['head-epochs'])), callbacks: epochLog('head') });
timings.head = seconds(t);

// --- phase 2: unfreeze block_10_expand and everything above, recompile at a low rate, fit again -------
t = performance.now();
const from = model.layers.findIndex((layer) => layer.name === 'block_10_expand');
if (from < 0) throw new Error('no block_10_expand in the base');
model.layers.forEach((layer, i) => (layer.trainable = i >= from));
model.compile({ optimizer: tf.train.adam(0.0001), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
await model.fit(xyTrain.x, xyTrain.y, { ...fitOptions(Number(values['ft-epochs'])), callbacks: epochLog('fine-tune') });
timings.fine_tune = seconds(t);

// --- test accuracy --------------------------------------------------------------------------------
t = performance.now();
const [, accuracy] = model.evaluate(xyTest.x, xyTest.y, { batchSize: 64 });
const testAccuracy = (await accuracy.data())[0];
timings.evaluate = seconds(t);

process.stdout.write(`${JSON.stringify({
  train: xyTrain.count, val: xyVal.count, test: xyTest.count, size: SIZE,
  head_epochs: Number(values['head-epochs']), ft_epochs: Number(values['ft-epochs']),
  trainable_params: model.trainableWeights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0),
  test_accuracy: testAccuracy, seconds: timings, total_seconds: seconds(started),
})}\n`);
