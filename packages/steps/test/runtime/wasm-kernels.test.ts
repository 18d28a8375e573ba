import type { NamedAttrMap, Tensor, Tensor4D } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerWasmKernels } from '../../src/runtime/index.js';
import { SIZES, expectOurGradient, expectOurKernel, onWasmAndCpu, outSize, relativeError, tf, type Pad } from './kernel-test-helpers.js';

const EXPLICIT: Pad = [[0, 0], [2, 1], [0, 2], [0, 0]];

interface Case {
  padName: string;
  stride: number;
  k: number;
  pad: Pad;
  h: number;
  w: number;
}

const cases: Case[] = [];
for (const stride of [1, 2])
  for (const k of [1, 3, 5])
    for (const pad of ['same', 'valid', EXPLICIT] as Pad[])
      for (const [h, w] of SIZES) {
        if (outSize(h, k, stride, pad, 1) > 0 && outSize(w, k, stride, pad, 2) > 0) {
          cases.push({ padName: typeof pad === 'string' ? pad : 'explicit', stride, k, pad, h, w });
        }
      }

/** dx and dW of sum(conv2d(x, w) · dy) on the current backend. */
function convGradients({ stride, k, pad, h, w }: Case): Tensor[] {
  const x = tf.randomNormal([2, h, w, 3], 0, 1, 'float32', 1) as Tensor4D;
  const filter = tf.randomNormal([k, k, 3, 4], 0, 1, 'float32', 2) as Tensor4D;
  const dy = tf.randomNormal([2, outSize(h, k, stride, pad, 1), outSize(w, k, stride, pad, 2), 4], 0, 1, 'float32', 3);
  const loss = (xt: Tensor, ft: Tensor) => tf.sum(tf.mul(tf.conv2d(xt as Tensor4D, ft as Tensor4D, stride, pad), dy));
  return tf.grads(loss)([x, filter]);
}

describe('conv2d gradients on wasm', () => {
  it('are ours: Conv2DBackpropFilter (tfjs-backend-wasm 4.22 has none) and Conv2DBackpropInput', () => {
    expectOurKernel('Conv2DBackpropFilter');
    expectOurKernel('Conv2DBackpropInput');
  });

  it.each(cases)('match the cpu backend: stride $stride, kernel $k, pad $padName, $h×$w', async (c) => {
    const [[dxWasm, dwWasm], [dxCpu, dwCpu]] = await onWasmAndCpu(() => convGradients(c));
    expect(relativeError(dxWasm!, dxCpu!)).toBeLessThan(1e-4);
    expect(relativeError(dwWasm!, dwCpu!)).toBeLessThan(1e-4);
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

describe('matMul with a transposed operand on wasm', () => {
  it('is ours', () => expectOurKernel('BatchMatMul'));

  it.each([
    [false, true],
    [true, false],
    [true, true],
  ])('transposeA %s, transposeB %s matches the cpu backend, as 2-D and as a batch of one', async (transposeA, transposeB) => {
    const multiply = () => {
      const a = tf.randomNormal(transposeA ? [7, 5] : [5, 7], 0, 1, 'float32', 21);
      const b = tf.randomNormal(transposeB ? [6, 7] : [7, 6], 0, 1, 'float32', 22);
      const batched = tf.matMul(tf.expandDims(a, 0), tf.expandDims(b, 0), transposeA, transposeB);
      return [tf.matMul(a, b, transposeA, transposeB), batched];
    };
    const [onWasm, onCpu] = await onWasmAndCpu(multiply);
    onWasm.forEach((values, i) => expect(relativeError(values, onCpu[i]!)).toBeLessThan(1e-5));
  });

  it('a dense layer trains on wasm as on the cpu backend', async () => {
    const step = () => {
      const x = tf.randomNormal([9, 12], 0, 1, 'float32', 23);
      const w = tf.randomNormal([12, 4], 0, 1, 'float32', 24);
      return tf.grads((xt: Tensor, wt: Tensor) => tf.sum(tf.square(tf.matMul(xt, wt))))([x, w]);
    };
    const [onWasm, onCpu] = await onWasmAndCpu(step);
    onWasm.forEach((values, i) => expect(relativeError(values, onCpu[i]!)).toBeLessThan(1e-5));
  });
});

describe('Tile on wasm', () => {
  const tiles: [string, number[], number[], 'float32' | 'int32' | 'bool'][] = [
    ['a broadcast (the batch-norm gradient)', [1, 1, 1, 5], [2, 3, 4, 1], 'float32'],
    ['a broadcast of int32', [3, 1], [1, 4], 'int32'],
    ['a real repeat (wasm kernel)', [2, 3], [2, 2], 'float32'],
    ['bool (wasm kernel)', [1, 2], [3, 1], 'bool'],
  ];

  it('is ours', () => expectOurKernel('Tile'));

  it.each(tiles)('matches the cpu backend: %s', async (_, shape, reps, dtype) => {
    const make = () => {
      const values = tf.randomNormal(shape, 0, 3, 'float32', 5);
      // wasm's own Cast to bool keeps the low byte (-2 → 254), so bools come from a comparison
      return [tf.tile(dtype === 'bool' ? tf.greater(values, 0) : tf.cast(values, dtype), reps)];
    };
    const [[onWasm], [onCpu]] = await onWasmAndCpu(make);
    expect(Array.from(onWasm!)).toEqual(Array.from(onCpu!));
  });
});

describe('Sum and Mean on wasm', () => {
  // Above 65,536 elements a reduction over adjacent axes short of the innermost runs as an average pool.
  const reductions: [string, number[], number[], boolean][] = [
    ['leading axes (batch-norm and bias gradients)', [16, 12, 12, 40], [0, 1, 2], false],
    ['leading axes, keepDims', [16, 12, 12, 40], [0, 1, 2], true],
    ['a middle block', [6, 40, 30, 9], [1, 2], false],
    ['the innermost axis (stock kernel)', [16, 12, 12, 40], [3], false],
    ['a small tensor (stock kernel)', [4, 5, 6], [0, 1], true],
  ];

  it('are ours', () => {
    expectOurKernel('Sum');
    expectOurKernel('Mean');
  });

  it.each(reductions)('match the cpu backend: %s', async (_, shape, axis, keepDims) => {
    const reduce = () => {
      const x = tf.randomNormal(shape, 1, 1, 'float32', 12);
      return [tf.sum(x, axis, keepDims), tf.mean(x, axis, keepDims)];
    };
    const [onWasm, onCpu] = await onWasmAndCpu(reduce);
    onWasm.forEach((values, i) => expect(relativeError(values, onCpu[i]!)).toBeLessThan(1e-5));
  });
});

describe('batch normalization and relu6 on wasm', () => {
  it('are ours: FusedBatchNorm, Identity and the Relu and ClipByValue (relu6) gradients', () => {
    expectOurKernel('FusedBatchNorm');
    expectOurKernel('Identity');
    expectOurGradient('Relu');
    expectOurGradient('ClipByValue');
  });

  it('FusedBatchNorm matches the cpu backend, with and without scale and offset', async () => {
    const normalize = () => {
      const x = tf.randomNormal([4, 5, 6, 7], 0, 2, 'float32', 13);
      const [mean, variance, scale, offset] = [14, 15, 16, 17].map((seed) => tf.randomUniform([7], 0.5, 1.5, 'float32', seed));
      return [tf.batchNorm(x, mean!, variance!, offset, scale, 1e-3), tf.batchNorm(x, mean!, variance!, undefined, undefined, 0.1)];
    };
    const [onWasm, onCpu] = await onWasmAndCpu(normalize);
    onWasm.forEach((values, i) => expect(relativeError(values, onCpu[i]!)).toBeLessThan(1e-5));
  });

  it.each([
    ['relu6', (t: Tensor) => tf.clipByValue(t, 0, 6)],
    ['relu', (t: Tensor) => tf.relu(t)],
  ])('the %s gradient matches the cpu backend, at the bounds and for infinities too', async (_name, activation) => {
    const gradient = () => {
      const x = tf.concat([tf.tensor1d([-1, 0, 3, 6, 7, -0, Infinity, -Infinity]), tf.randomNormal([201], 3, 5, 'float32', 18)]);
      const dy = tf.randomNormal(x.shape, 0, 1, 'float32', 19);
      return [tf.grad((t: Tensor) => tf.sum(tf.mul(activation(t), dy)))(x)];
    };
    const [[onWasm], [onCpu]] = await onWasmAndCpu(gradient);
    const plusZero = (values: Float32Array) => Array.from(values, (v) => v + 0); // dy·0 may be −0
    expect(plusZero(onWasm!)).toEqual(plusZero(onCpu!));
  });

  it.each([
    ['relu6', (t: Tensor) => tf.clipByValue(t, 0, 6)],
    ['relu', (t: Tensor) => tf.relu(t)],
  ])('the %s gradient passes NaN on as tfjs-core does', (_name, activation) => {
    const x = tf.tensor1d([Number.NaN, 1, 2, 3, Number.NaN]);
    const dx = tf.grad((t: Tensor) => tf.sum(activation(t)))(x).dataSync();
    expect(Array.from(dx, Number.isNaN)).toEqual([true, false, false, false, true]);
  });

  it('a clone (Identity) keeps its values after the original is disposed', () => {
    const original = tf.tensor([1, 2, 3]);
    const copy = tf.clone(original);
    original.dispose();
    expect(Array.from(copy.dataSync())).toEqual([1, 2, 3]);
    copy.dispose();
  });
});

describe('batch normalization gradient on wasm', () => {
  it('is ours', () => expectOurGradient('FusedBatchNorm'));

  it('matches the cpu backend for x, mean, variance, scale and offset', async () => {
    const gradients = () => {
      const x = tf.randomNormal([4, 5, 6, 7], 0, 1, 'float32', 6);
      const [mean, variance, scale, offset] = [7, 8, 9, 10].map((seed) => tf.randomUniform([7], 0.5, 1.5, 'float32', seed));
      const dy = tf.randomNormal([4, 5, 6, 7], 0, 1, 'float32', 11);
      const loss = (...args: Tensor[]) => tf.sum(tf.mul(tf.batchNorm(args[0]!, args[1]!, args[2]!, args[4]!, args[3]!, 1e-3), dy));
      return tf.grads(loss)([x, mean!, variance!, scale!, offset!]);
    };
    const [onWasm, onCpu] = await onWasmAndCpu(gradients);
    onWasm.forEach((values, i) => expect(relativeError(values, onCpu[i]!)).toBeLessThan(1e-5));
  });
});

describe('registerWasmKernels', () => {
  const z = (...shape: number[]) => tf.zeros(shape);
  const kernels: [string, () => Record<string, Tensor>, NamedAttrMap][] = [
    ['Conv2DBackpropFilter', () => ({ x: z(2, 7, 7, 3), dy: z(2, 4, 4, 4) }), { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 3, 4] }],
    ['Conv2DBackpropInput', () => ({ dy: z(2, 4, 4, 4), filter: z(3, 3, 3, 4) }), { strides: 2, pad: 'same', dataFormat: 'NHWC', inputShape: [2, 7, 7, 3] }],
    ['DepthwiseConv2dNativeBackpropFilter', () => ({ x: z(2, 7, 7, 3), dy: z(2, 4, 4, 3) }), { strides: 2, pad: 'same', dilations: 1, filterShape: [3, 3, 3, 1] }],
    ['DepthwiseConv2dNativeBackpropInput', () => ({ dy: z(2, 4, 4, 3), filter: z(3, 3, 3, 1) }), { strides: 2, pad: 'same', dilations: 1, inputShape: [2, 7, 7, 3] }],
    ['BatchMatMul', () => ({ a: z(1, 5, 3), b: z(1, 5, 4) }), { transposeA: true, transposeB: false }],
    ['Tile', () => ({ x: z(1, 1, 1, 3) }), { reps: [2, 7, 7, 1] }],
    ['Sum', () => ({ x: z(8, 16, 16, 40) }), { axis: [0, 1, 2], keepDims: false }],
    ['FusedBatchNorm', () => ({ x: z(2, 3, 3, 4), mean: z(4), variance: z(4), scale: z(4), offset: z(4) }), { varianceEpsilon: 1e-3 }],
  ];

  it.each(kernels)('%s leaves no tensor behind but its output', (kernelName, makeInputs, attrs) => {
    const inputs = makeInputs();
    const before = tf.memory().numTensors;
    const output = tf.engine().runKernel(kernelName, inputs, attrs) as Tensor;
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([output, ...Object.values(inputs)]);
  });

  it('is idempotent: a second call keeps the registered kernels', () => {
    const names = ['Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'Tile', 'Sum', 'Identity'];
    const before = names.map((name) => tf.getKernel(name, 'wasm'));
    const clipGradient = tf.getGradient('ClipByValue');
    registerWasmKernels(tf);
    names.forEach((name, i) => expect(tf.getKernel(name, 'wasm')).toBe(before[i]));
    expect(tf.getGradient('ClipByValue')).toBe(clipGradient);
    expect(Array.from(tf.tile(tf.tensor([[1, 2]]), [2, 1]).dataSync())).toEqual([1, 2, 1, 2]);
  });
});
