import type { Tensor, Tensor4D } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../src/runtime/index.js';

const { tf } = await loadBackend('wasm');

type Pad = 'same' | 'valid';

/** d(sum(conv2d(x, w) * dy))/dw on the current backend. */
async function filterGradient(x: number[], xShape: number[], w: number[], wShape: number[], stride: number, pad: Pad, dy: number[]) {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, xShape as [number, number, number, number]);
    const dyt = tf.tensor(dy);
    const grad = tf.grad((wt: Tensor) => tf.conv2d(xt, wt as Tensor4D, stride, pad).reshape([-1]).mul(dyt).sum());
    return grad(tf.tensor4d(w, wShape as [number, number, number, number]));
  }).data();
}

function random(n: number, seed: number): number[] {
  return Array.from(tf.randomNormal([n], 0, 1, 'float32', seed).dataSync());
}

describe('Conv2DBackpropFilter on wasm', () => {
  it('is registered (tfjs-backend-wasm 4.22 has none)', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });

  const cases: [number, number, Pad, number, number][] = [];
  for (const stride of [1, 2]) for (const k of [1, 3]) for (const pad of ['same', 'valid'] as const) for (const h of [7, 8]) cases.push([stride, k, pad, h, h + 3]);

  it.each(cases)('matches the cpu backend: stride %i, kernel %i, %s, %i×%i input', async (stride, k, pad, h, w) => {
    const xShape = [2, h, w, 3];
    const wShape = [k, k, 3, 4];
    const x = random(2 * h * w * 3, 1);
    const weights = random(k * k * 3 * 4, 2);
    const outH = pad === 'same' ? Math.ceil(h / stride) : Math.ceil((h - k + 1) / stride);
    const outW = pad === 'same' ? Math.ceil(w / stride) : Math.ceil((w - k + 1) / stride);
    const dy = random(2 * outH * outW * 4, 3);
    const onWasm = await filterGradient(x, xShape, weights, wShape, stride, pad, dy);
    await loadBackend('cpu'); // not tf.setBackend: loadBackend also silences tfjs's cpu banner
    const onCpu = await filterGradient(x, xShape, weights, wShape, stride, pad, dy);
    await loadBackend('wasm');
    const scale = Math.max(...Array.from(onCpu, Math.abs));
    const worst = Math.max(...Array.from(onWasm, (v, i) => Math.abs(v - (onCpu[i] ?? Number.NaN))));
    expect(worst / scale).toBeLessThan(1e-5);
  });

  it('lets a conv layer train on wasm', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, strides: 2, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
    const x = tf.randomUniform([16, 8, 8, 1], 0, 1, 'float32', 3);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 2), 'int32'), 2);
    const before = (model.layers[0]?.getWeights()[0] as Tensor).dataSync().slice();
    const history = await model.fit(x, y, { epochs: 5, batchSize: 16, verbose: 0 });
    const after = (model.layers[0]?.getWeights()[0] as Tensor).dataSync();
    expect(Array.from(after)).not.toEqual(Array.from(before));
    const losses = history.history['loss'] as number[];
    expect(losses.at(-1)).toBeLessThan(losses[0] as number);
    tf.dispose([x, y]);
    model.dispose();
  });
});
