import type { SymbolicTensor, Tensor } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadBase, loadModel, MNIST_CNN_DIR, toModelInput } from '../../src/runtime/index.js';
import { mnistDigits, tempDir, wasm } from './helpers.js';

const tf = await wasm();
const cacheDir = await tempDir();

describe('BaseModel owns the model; views never dispose it', () => {
  it('shows the tfjs trap: disposing a truncated tf.model disposes its parent', async () => {
    const parent = await loadModel(tf, MNIST_CNN_DIR);
    const truncated = tf.model({ inputs: parent.inputs, outputs: parent.getLayer('conv2_relu').output as SymbolicTensor });
    truncated.dispose();
    const x = tf.zeros([1, 28, 28, 1]);
    expect(() => parent.predict(x)).toThrow(/disposed/);
    x.dispose();
  });

  it('keeps the base usable after a view is disposed, and frees everything once', async () => {
    const baseline = tf.memory().numTensors;
    const base = await loadBase(tf, 'mnist_cnn', { cacheDir });
    const view = base.view('conv2_relu');
    expect(view.outputs[0]?.shape).toEqual([null, 32]);
    expect(() => base.view('predictions')).toThrow('the base has no layer named "predictions" before its cut at conv3_relu');
    view.dispose();
    base.model.dispose();
    base.trunk.dispose();
    const x = tf.zeros([2, 28, 28, 1]);
    const features = base.predict(x);
    expect(features.shape).toEqual([2, 64]);
    tf.dispose([x, features]);
    base.dispose();
    base.dispose();
    expect(base.disposed).toBe(true);
    expect(() => base.view('conv1_relu')).toThrow(/disposed/);
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it.each([
    ['mnist_cnn', {}],
    ['mobilenet_v2', { inputSize: 96 }],
  ] as const)('returns tf.memory().numTensors to its baseline after loading, predicting with and disposing %s', async (name, options) => {
    const baseline = tf.memory().numTensors;
    const base = await loadBase(tf, name, { cacheDir, ...options });
    const { pixels, count } = mnistDigits([0, 1], 4);
    const images = tf.tensor4d(pixels, [count, 28, 28, 1]);
    const input = toModelInput(tf, images, base.preprocessing);
    const features = base.predict(input, 4);
    expect(features.shape).toEqual([count, ...base.info.featureShape]);
    const pooledAt = base.view(base.info.layer === 'out_relu' ? 'block_12_add' : 'conv2_relu').predict(input) as Tensor;
    tf.dispose([images, input, features, pooledAt]);
    base.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
  });
});

describe('mnist_cnn, the small base of our own', () => {
  it('classifies held-out digits 0–4 with its head on (include_top)', async () => {
    const base = await loadBase(tf, 'mnist_cnn', { cacheDir, includeTop: true });
    expect(base.info).toMatchObject({ layer: 'predictions', pooling: 'none', featureShape: [5] });
    const { pixels, labels, count } = mnistDigits([0, 1, 2, 3, 4], 40, 'end');
    const predicted = tf.tidy(() => base.predict(toModelInput(tf, tf.tensor4d(pixels, [count, 28, 28, 1]), base.preprocessing)).argMax(1));
    const guesses = Array.from(await predicted.data());
    const accuracy = guesses.filter((g, i) => g === labels[i]).length / count;
    expect(accuracy).toBeGreaterThan(0.95);
    predicted.dispose();
    base.dispose();
  });

  it('gives 64 pooled features without its head, at 28 px or rebuilt for 56 px with the same weights', async () => {
    const native = await loadBase(tf, 'mnist_cnn', { cacheDir });
    expect(native.info).toMatchObject({ layer: 'conv3_relu', featureShape: [64] });
    expect(native.preprocessing).toEqual({ inputSize: 28, channels: 1, range: [0, 1], resize: 'bilinear' });
    const large = await loadBase(tf, 'mnist_cnn', { cacheDir, inputSize: 56 });
    expect(large.trunk.inputs[0]?.shape).toEqual([null, 56, 56, 1]);
    expect(large.info.featureShape).toEqual([64]);
    const a = native.trunk.getWeights().map((w) => Array.from(w.dataSync()));
    const b = large.trunk.getWeights().map((w) => Array.from(w.dataSync()));
    expect(b).toEqual(a);
    native.dispose();
    large.dispose();
  });
});

describe('toModelInput', () => {
  it('resizes, repeats a grey channel into three and maps 0..255 onto the range', async () => {
    const grey = tf.tensor4d([0, 255, 255, 0], [1, 2, 2, 1]);
    const input = toModelInput(tf, grey, { inputSize: 4, channels: 3, range: [-1, 1], resize: 'bilinear' });
    expect(input.shape).toEqual([1, 4, 4, 3]);
    const values = Array.from(await input.data());
    expect(Math.min(...values)).toBe(-1);
    expect(Math.max(...values)).toBe(1);
    const corner = values.slice(0, 3);
    expect(corner).toEqual([-1, -1, -1]);
    tf.dispose([grey, input]);
  });

  it('turns rgb into grey with luma weights for a one-channel model', async () => {
    const rgb = tf.tensor3d([255, 0, 0], [1, 1, 3]);
    const input = toModelInput(tf, rgb, { inputSize: 1, channels: 1, range: [0, 1], resize: 'bilinear' });
    expect(input.shape).toEqual([1, 1, 1, 1]);
    expect((await input.data())[0]).toBeCloseTo(0.299, 6);
    tf.dispose([rgb, input]);
  });
});
