import type { LayersModel, Tensor, Tensor4D } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../src/runtime/index.js';
import { simdFor } from '../../src/runtime/simd-kernels.js';
import { SIZES, expectOurKernel, onWasmAndCpu, outSize, relativeError, tf, type Pad } from './kernel-test-helpers.js';

const EXPLICIT: Pad = [[0, 0], [1, 2], [2, 0], [0, 0]];

interface Case {
  padName: string;
  stride: number;
  k: number;
  pad: Pad;
  h: number;
  w: number;
  multiplier: number;
}

const cases: Case[] = [];
for (const stride of [1, 2])
  for (const k of [1, 3, 5])
    for (const pad of ['same', 'valid', EXPLICIT] as Pad[])
      for (const [h, w] of SIZES)
        for (const multiplier of [1, 2]) {
          if (outSize(h, k, stride, pad, 1) > 0 && outSize(w, k, stride, pad, 2) > 0) {
            cases.push({ padName: typeof pad === 'string' ? pad : 'explicit', stride, k, pad, h, w, multiplier });
          }
        }

/** dx and dW of sum(depthwiseConv2d(x, w) · dy) on the current backend. */
function depthwiseGradients({ stride, k, pad, h, w, multiplier }: Case): Tensor[] {
  const channels = 6; // one SIMD vector of 4 and 2 left over for the SIMD kernels' scalar tail
  const x = tf.randomNormal([2, h, w, channels], 0, 1, 'float32', 1) as Tensor4D;
  const filter = tf.randomNormal([k, k, channels, multiplier], 0, 1, 'float32', 2) as Tensor4D;
  const dyShape = [2, outSize(h, k, stride, pad, 1), outSize(w, k, stride, pad, 2), channels * multiplier];
  const dy = tf.randomNormal(dyShape, 0, 1, 'float32', 3);
  const loss = (xt: Tensor, ft: Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(xt as Tensor4D, ft as Tensor4D, stride, pad), dy));
  return tf.grads(loss)([x, filter]);
}

describe('depthwise conv gradients on wasm', () => {
  it('are ours (tfjs-backend-wasm 4.22 has none)', () => {
    expectOurKernel('DepthwiseConv2dNativeBackpropFilter');
    expectOurKernel('DepthwiseConv2dNativeBackpropInput');
  });

  it('run on the SIMD kernels loaded with the backend (multiplier 1)', () => {
    expect(simdFor(tf)).toBeDefined();
  });

  it.each(cases)('match the cpu backend: stride $stride, kernel $k, pad $padName, $h×$w, multiplier $multiplier', async (c) => {
    const [[dxWasm, dwWasm], [dxCpu, dwCpu]] = await onWasmAndCpu(() => depthwiseGradients(c));
    expect(relativeError(dxWasm!, dxCpu!)).toBeLessThan(1e-4);
    expect(relativeError(dwWasm!, dwCpu!)).toBeLessThan(1e-4);
  });
});

/** depthwise (stride 2) → batch norm → relu6 → pointwise conv → pooled dense: a MobileNetV2 block in small. */
function tinyBlockModel(): LayersModel {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.depthwiseConv2d({ inputShape: [9, 9, 4], kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, useBias: false, depthwiseInitializer: init(1) }),
      tf.layers.batchNormalization({ betaInitializer: tf.initializers.constant({ value: 0.1 }) }),
      tf.layers.reLU({ maxValue: 6 }),
      tf.layers.conv2d({ filters: 6, kernelSize: 1, kernelInitializer: init(2) }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
  return model;
}

/** Every weight after one `fit` step on the current backend. */
async function weightsAfterOneStep(): Promise<Float32Array[]> {
  const model = tinyBlockModel();
  const x = tf.randomUniform([8, 9, 9, 4], 0, 1, 'float32', 4);
  const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3);
  await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, shuffle: false });
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  tf.dispose([x, y]);
  model.dispose();
  return weights;
}

describe('training a depthwise block on wasm', () => {
  it('one fit step updates the weights as the cpu backend does', async () => {
    const initial = tinyBlockModel();
    const before = initial.getWeights().map((w) => w.dataSync().slice());
    initial.dispose();
    expect(tf.getBackend()).toBe('wasm');
    const onWasm = await weightsAfterOneStep();
    await loadBackend('cpu');
    const onCpu = await weightsAfterOneStep().finally(() => loadBackend('wasm'));
    expect(onWasm.length).toBe(onCpu.length);
    onWasm.forEach((w, i) => {
      const stepOnWasm = w.map((v, j) => v - (before[i]?.[j] ?? Number.NaN));
      const stepOnCpu = onCpu[i]!.map((v, j) => v - (before[i]?.[j] ?? Number.NaN));
      expect(Math.max(...Array.from(stepOnCpu, Math.abs))).toBeGreaterThan(1e-4); // every weight moved
      expect(relativeError(stepOnWasm, stepOnCpu)).toBeLessThan(1e-4);
    });
  });
});
