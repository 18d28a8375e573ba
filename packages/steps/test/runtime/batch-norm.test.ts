import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { freezeBatchNorm, loadModel, MNIST_CNN_DIR, type BatchNormPolicy } from '../../src/runtime/index.js';
import { mnistDigits, wasm } from './helpers.js';

const tf = await wasm();
const { pixels, labels, count } = mnistDigits([0, 1, 2, 3, 4], 4, 'start');

interface Snapshot {
  movingMean: number[];
  movingVariance: number[];
  gamma: number[];
  beta: number[];
}

/** BN weights in tfjs order: gamma, beta, moving_mean, moving_variance. */
function snapshot(model: LayersModel, name: string): Snapshot {
  const [gamma, beta, movingMean, movingVariance] = model.getLayer(name).getWeights().map((w) => Array.from(w.dataSync()));
  return { gamma: gamma ?? [], beta: beta ?? [], movingMean: movingMean ?? [], movingVariance: movingVariance ?? [] };
}

/**
 * mnist_cnn with everything frozen except its classifier and, if asked, conv3_bn; one fit step on
 * a batch of 20 digits, then the BN layers' weights before and after.
 */
async function fitOnce(policy: BatchNormPolicy | null, unfreezeConv3Bn: boolean) {
  const model = await loadModel(tf, MNIST_CNN_DIR);
  for (const layer of model.layers) layer.trainable = layer.name === 'predictions' || (unfreezeConv3Bn && layer.name === 'conv3_bn');
  if (policy) expect(freezeBatchNorm(model, policy)).toBe(3);
  model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
  const before = { conv1: snapshot(model, 'conv1_bn'), conv3: snapshot(model, 'conv3_bn') };
  const x = tf.tensor4d(pixels.map((p) => p / 255), [count, 28, 28, 1]);
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), 5);
  await model.fit(x, y, { epochs: 1, batchSize: count, verbose: 0 });
  const after = { conv1: snapshot(model, 'conv1_bn'), conv3: snapshot(model, 'conv3_bn') };
  tf.dispose([x, y] as Tensor[]);
  model.dispose();
  return { before, after };
}

describe('BatchNormalization during fit', () => {
  it('tfjs alone updates the moving statistics of a frozen BN layer (the trap)', async () => {
    const { before, after } = await fitOnce(null, false);
    expect(after.conv1.movingMean).not.toEqual(before.conv1.movingMean);
    expect(after.conv1.movingVariance).not.toEqual(before.conv1.movingVariance);
  });

  it("'frozen': a frozen BN layer keeps its moving statistics; an unfrozen one trains with batch statistics", async () => {
    const { before, after } = await fitOnce('frozen', true);
    expect(after.conv1).toEqual(before.conv1);
    expect(after.conv3.movingMean).not.toEqual(before.conv3.movingMean);
    expect(after.conv3.gamma).not.toEqual(before.conv3.gamma);
  });

  it("'always' (Keras's fine-tuning rule): an unfrozen BN layer stays in inference mode, yet its gamma and beta train", async () => {
    const { before, after } = await fitOnce('always', true);
    expect(after.conv1).toEqual(before.conv1);
    expect(after.conv3.movingMean).toEqual(before.conv3.movingMean);
    expect(after.conv3.movingVariance).toEqual(before.conv3.movingVariance);
    expect(after.conv3.gamma).not.toEqual(before.conv3.gamma);
    expect(after.conv3.beta).not.toEqual(before.conv3.beta);
  });

  it('leaves inference unchanged (predict already runs BN in inference mode)', async () => {
    const plain = await loadModel(tf, MNIST_CNN_DIR);
    const patched = await loadModel(tf, MNIST_CNN_DIR);
    freezeBatchNorm(patched);
    const x = tf.tensor4d(pixels.map((p) => p / 255), [count, 28, 28, 1]);
    const [a, b] = [plain.predict(x) as Tensor, patched.predict(x) as Tensor];
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    tf.dispose([x, a, b]);
    plain.dispose();
    patched.dispose();
  });
});
