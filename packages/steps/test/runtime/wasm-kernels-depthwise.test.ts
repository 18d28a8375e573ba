import type { LayersModel, Tensor, Tensor4D } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '../../src/runtime/index.js';

const { tf } = await loadBackend('wasm');

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
const EXPLICIT: Pad = [[0, 0], [1, 2], [2, 0], [0, 0]];

/** Runs `compute` on wasm, then on cpu (fresh tensors each time); checks the shapes agree, returns the values. */
async function onWasmAndCpu(compute: () => Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  const run = (backend: string) => {
    expect(tf.getBackend()).toBe(backend);
    const outputs = tf.tidy(compute);
    const result = { values: outputs.map((t) => t.dataSync() as Float32Array), shapes: outputs.map((t) => t.shape) };
    tf.dispose(outputs);
    return result;
  };
  const onWasm = run('wasm');
  await loadBackend('cpu'); // not tf.setBackend: loadBackend also silences tfjs's cpu banner
  try {
    const onCpu = run('cpu');
    expect(onWasm.shapes).toEqual(onCpu.shapes);
    return [onWasm.values, onCpu.values];
  } finally {
    await loadBackend('wasm');
  }
}

/** max |a − b| / max |b|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const scale = Math.max(...Array.from(b, Math.abs));
  return Math.max(...Array.from(a, (v, i) => Math.abs(v - (b[i] ?? Number.NaN)))) / scale;
}

function outSize(size: number, k: number, stride: number, pad: Pad, side: 1 | 2): number {
  if (pad === 'same') return Math.ceil(size / stride);
  if (pad === 'valid') return Math.ceil((size - k + 1) / stride);
  const [before, after] = pad[side];
  return Math.floor((size + before + after - k) / stride) + 1;
}

interface Case {
  padName: string;
  stride: number;
  k: number;
  pad: Pad;
  h: number;
  w: number;
  multiplier: number;
}

/** Odd and even sizes; the small one gives maps of at most 3×3, which some kernels treat apart. */
const SIZES: [number, number][] = [
  [7, 10],
  [8, 11],
  [3, 2],
];
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
  const channels = 3;
  const x = tf.randomNormal([2, h, w, channels], 0, 1, 'float32', 1) as Tensor4D;
  const filter = tf.randomNormal([k, k, channels, multiplier], 0, 1, 'float32', 2) as Tensor4D;
  const dyShape = [2, outSize(h, k, stride, pad, 1), outSize(w, k, stride, pad, 2), channels * multiplier];
  const dy = tf.randomNormal(dyShape, 0, 1, 'float32', 3);
  const loss = (xt: Tensor, ft: Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(xt as Tensor4D, ft as Tensor4D, stride, pad), dy));
  return tf.grads(loss)([x, filter]);
}

describe('depthwise conv gradients on wasm', () => {
  it('are registered (tfjs-backend-wasm 4.22 has none)', () => {
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropFilter', 'wasm')).toBeDefined();
    expect(tf.getKernel('DepthwiseConv2dNativeBackpropInput', 'wasm')).toBeDefined();
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
