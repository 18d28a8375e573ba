import type * as Tfjs from '@tensorflow/tfjs';
import { simdFor } from './simd-kernels.js';
import type { Tf } from './tf.js';
import { asTensor } from './wasm-kernels-util.js';

/*
 * Overrides of stock tfjs-backend-wasm 4.22 kernels (Tile, BatchMatMul, Sum, Mean, Identity,
 * FusedBatchNorm) and of tfjs-core gradients (FusedBatchNorm, ClipByValue, Relu). Each takes the stock
 * kernel or gradient and returns one that computes the common case from fast kernels or SIMD ones and
 * hands anything else to the stock one. Why each is replaced, with timings: bench/kernels/RESULTS.md
 * ("What is replaced, and why").
 */

type KernelFunc = Tfjs.KernelConfig['kernelFunc'];
type KernelArgs = Parameters<KernelFunc>[0];
type TensorInfo = Tfjs.TensorInfo;

/**
 * Stock Tile copies element by element (tfjs-core's batch-norm gradient tiles [1,1,1,c] to a whole
 * batch). Repeating leading size-1 axes is an outer product with ones, which XNNPACK's matMul
 * writes; other broadcasts add zeros.
 */
export function tileKernel(tf: Tf, stock: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    const { reps } = args.attrs as unknown as Tfjs.TileAttrs;
    if (!x || !isBroadcast(x.shape, reps) || (x.dtype !== 'float32' && x.dtype !== 'int32')) return stock(args);
    const shape = x.shape.map((size, axis) => size * (reps[axis] ?? 1));
    const firstKept = reps.findIndex((rep) => rep === 1);
    const prefix = firstKept === -1 ? reps.length : firstKept;
    const leadingOnly = reps.slice(prefix).every((rep) => rep === 1);
    return tf.tidy(() => {
      const t = asTensor(tf, x);
      if (x.dtype === 'int32' || !leadingOnly) return tf.add(t, tf.zeros(shape, x.dtype));
      const rows = product(shape.slice(0, prefix));
      return tf.reshape(tf.matMul(tf.ones([rows, 1]), tf.reshape(t, [1, -1])), shape);
    });
  };
}

function isBroadcast(shape: readonly number[], reps: readonly number[]): boolean {
  return reps.length === shape.length && reps.every((rep, axis) => rep === 1 || shape[axis] === 1);
}

/**
 * Stock BatchMatMul hands a transposed operand to a naive loop (every dense layer's weight gradient,
 * xᵀ·dy, is one); transposing it first lets XNNPACK run the product. Batched products (leading size
 * above 1) take the naive loop either way and keep the stock kernel.
 */
export function transposedMatMulKernel(tf: Tf, stock: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as Record<string, TensorInfo | undefined>;
    const { transposeA, transposeB } = args.attrs as unknown as Tfjs.BatchMatMulAttrs;
    const single = (t: TensorInfo) => t.dtype === 'float32' && t.shape.length >= 2 && product(t.shape.slice(0, -2)) === 1;
    if (!a || !b || !(transposeA || transposeB) || !single(a) || !single(b)) return stock(args);
    const matrix = (t: TensorInfo, transpose: boolean) => {
      const flat = tf.reshape(asTensor(tf, t), t.shape.slice(-2));
      return transpose ? tf.transpose(flat) : flat;
    };
    return tf.tidy(() => {
      const product2d = tf.matMul(matrix(a, transposeA), matrix(b, transposeB));
      const leading = a.shape.length >= b.shape.length ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
      return tf.reshape(product2d, [...leading, ...product2d.shape]);
    });
  };
}

/**
 * Stock Sum and Mean move the reduced axes innermost with a transpose first (every batch-norm and
 * bias gradient reduces [n,h,w,c] over [0,1,2]). A reduction over a block of adjacent axes that are
 * not the innermost is an average pool over that block seen as one spatial axis
 * (x as [outer, block, 1, inner]), which XNNPACK streams through. Small tensors keep the stock
 * kernel, whose fixed cost is lower.
 */
export function pooledReduceKernel(tf: Tf, stock: KernelFunc, mean: boolean): KernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    const { axis, keepDims } = args.attrs as unknown as Tfjs.SumAttrs;
    if (!x || x.dtype !== 'float32' || product(x.shape) < MIN_POOLED_REDUCTION) return stock(args);
    const axes = tf.util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    const [first, last] = [axes[0] ?? 0, axes.at(-1) ?? 0];
    const block = axes.length > 0 && last - first === axes.length - 1 && last < x.shape.length - 1;
    if (!block) return stock(args);
    const [outer, size, inner] = [x.shape.slice(0, first), x.shape.slice(first, last + 1), x.shape.slice(last + 1)];
    const n = product(size);
    return tf.tidy(() => {
      const pooled = tf.avgPool(tf.reshape(asTensor(tf, x), [product(outer), n, 1, product(inner)]) as Tfjs.Tensor4D, [n, 1], 1, 'valid');
      const result = mean ? pooled : tf.mul(pooled, n);
      return tf.reshape(result, [...outer, ...(keepDims ? size.map(() => 1) : []), ...inner]);
    });
  };
}

const MIN_POOLED_REDUCTION = 1 << 16;

/**
 * Stock Identity copies the tensor; the engine calls it for every tensor it saves for the backward
 * pass. Tensors are immutable, so sharing the data (what the cpu backend and wasm's own Reshape do)
 * gives the same result without the copy.
 */
export function sharedIdentityKernel(stock: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs['x'];
    if (!x || x.dtype === 'string') return stock(args);
    (args.backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/**
 * FusedBatchNorm as (x − mean)·scale/√(var+ε) + offset: three broadcasts, or with the SIMD kernels
 * one pass over x (the same operations in the same order: the same bits), both faster than stock.
 */
export function batchNormKernel(tf: Tf, stock: KernelFunc): KernelFunc {
  return (args: KernelArgs) => {
    const { x, mean, variance, scale, offset } = args.inputs as Record<string, TensorInfo | undefined>;
    if (!x || !mean || !variance || x.dtype !== 'float32') return stock(args);
    const { varianceEpsilon } = args.attrs as unknown as Tfjs.FusedBatchNormAttrs;
    return tf.tidy(() => {
      let factor = tf.rsqrt(tf.add(asTensor(tf, variance), varianceEpsilon));
      if (scale) factor = tf.mul(factor, asTensor(tf, scale));
      const simd = simdFor(tf);
      if (simd && offset && perChannel(x, [mean, factor, offset])) {
        const [rows, channels] = rowsAndChannels(x);
        const at = simd.address;
        return simd.output(x.shape, (out) => simd.kernels.batchNorm(at(x), out, at(mean), at(factor), at(offset), rows, channels));
      }
      const normed = tf.mul(tf.sub(asTensor(tf, x), asTensor(tf, mean)), factor);
      return offset ? tf.add(normed, asTensor(tf, offset)) : normed;
    });
  };
}

/**
 * tfjs-core's FusedBatchNorm gradient computes x − mean and dy·scale over the whole input before it
 * knows which gradients are asked for, then each from broadcasts, a Tile and a Sum. With per-channel
 * statistics on wasm, the input, scale and offset gradients are one SIMD pass each (the sums in row
 * order); mean and variance (batch statistics in training mode) keep tfjs-core's.
 */
export function batchNormGradient(tf: Tf, stock: Tfjs.GradConfig): Tfjs.GradConfig {
  return {
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale] = saved as [Tfjs.Tensor, Tfjs.Tensor, Tfjs.Tensor, Tfjs.Tensor | undefined];
      const simd = simdFor(tf);
      const dyTensor = dy as Tfjs.Tensor;
      if (!simd || dyTensor.dtype !== 'float32' || !perChannel(x, scale ? [mean, variance, scale] : [mean, variance])) return stock.gradFunc(dy, saved, attrs);
      const { varianceEpsilon } = attrs as unknown as Tfjs.FusedBatchNormAttrs;
      const [rows, channels] = rowsAndChannels(x);
      const [at, kernels] = [simd.address, simd.kernels];
      const inverseDeviation = () => tf.reshape(tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon))), [channels]);
      const channelVector = (fill: (out: number) => void) => tf.reshape(simd.output([channels], (out) => (kernels.zero(out, channels), fill(out))), mean.shape);
      const stockGradient = (input: string) => () => stock.gradFunc(dy, saved, attrs)[input]!();
      return {
        x: () => {
          const factor = inverseDeviation();
          const scaleValue = scale ?? tf.onesLike(factor);
          return simd.output(x.shape, (out) => kernels.scaleChannels(at(dyTensor), out, at(factor), at(scaleValue), rows, channels));
        },
        mean: stockGradient('mean'),
        variance: stockGradient('variance'),
        scale: () => {
          const factor = inverseDeviation();
          return channelVector((out) => kernels.centeredDots(at(dyTensor), at(x), at(mean), at(factor), out, rows, channels));
        },
        offset: () => channelVector((out) => kernels.channelSums(at(dyTensor), out, rows, channels)),
      };
    },
  };
}

/** Whether every one of `perChannelValues` holds one float32 per channel of x (its last axis), x being float32. */
function perChannel(x: TensorInfo, perChannelValues: TensorInfo[]): boolean {
  const channels = x.shape.at(-1) ?? 0;
  return x.dtype === 'float32' && channels > 0 && perChannelValues.every((t) => t.dtype === 'float32' && product(t.shape) === channels);
}

function rowsAndChannels(x: TensorInfo): [number, number] {
  const channels = x.shape.at(-1)!;
  return [product(x.shape) / channels, channels];
}

/**
 * tfjs-core's ClipByValue gradient (relu6's) builds a bool mask with GreaterEqual, LessEqual,
 * LogicalAnd and Select, each much slower on wasm than float arithmetic. On wasm this computes
 * dy·(1 − step(min − x) − step(x − max)) instead: the same values, a NaN x gives NaN rather than 0.
 * With the SIMD kernels loaded that is one pass (the same bits) instead of six kernels.
 */
export function clipGradient(tf: Tf, stock: Tfjs.GradConfig): Tfjs.GradConfig {
  return {
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      if (tf.getBackend() !== 'wasm') return stock.gradFunc(dy, saved, attrs);
      const [x] = saved as [Tfjs.Tensor];
      const dyTensor = dy as Tfjs.Tensor;
      const { clipValueMin, clipValueMax } = attrs as unknown as Tfjs.ClipByValueAttrs;
      const simd = simdFor(tf);
      if (simd && x.dtype === 'float32' && dyTensor.dtype === 'float32' && tf.util.arraysEqual(x.shape, dyTensor.shape)) {
        const at = simd.address;
        return { x: () => simd.output(x.shape, (out) => simd.kernels.clipGradient(at(dyTensor), at(x), out, 1, x.size, clipValueMin, clipValueMax)) };
      }
      const outside = () => tf.add(tf.step(tf.sub(clipValueMin, x)), tf.step(tf.sub(x, clipValueMax)));
      return { x: () => tf.mul(dyTensor, tf.sub(1, outside())) };
    },
  };
}

/** tfjs-core's Relu gradient, dy·step(x) as Step, Cast and Multiply kernels; on wasm one SIMD pass with the same bits. */
export function reluGradient(tf: Tf, stock: Tfjs.GradConfig): Tfjs.GradConfig {
  return {
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [Tfjs.Tensor];
      const dyTensor = dy as Tfjs.Tensor;
      const simd = simdFor(tf);
      if (!simd || x.dtype !== 'float32' || dyTensor.dtype !== 'float32' || !tf.util.arraysEqual(x.shape, dyTensor.shape)) return stock.gradFunc(dy, saved, attrs);
      const at = simd.address;
      return { x: () => simd.output(x.shape, (out) => simd.kernels.reluGradient(at(dyTensor), at(x), out, 1, x.size)) };
    },
  };
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
