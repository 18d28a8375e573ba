import type * as Tfjs from '@tensorflow/tfjs';
import { simdFor } from './simd-kernels.js';
import { fullCorrelationInput } from './wasm-kernels-conv.js';
import { convInfo, window, type ConvGradAttrs, type Tensor4D } from './wasm-kernels-util.js';
import type { Tf } from './tf.js';

type ConvInfo = Tfjs.backend_util.Conv2DInfo;

/**
 * dW[kh,kw,c,m] = Σ_{n,oh,ow} x[n, oh·s+kh-pad, ow·s+kw-pad, c] · dy[n,oh,ow,c·M+m]: with multiplier 1
 * one pass of the SIMD kernel (simd-kernels.ts), otherwise one of two ways built from kernels XNNPACK
 * runs fast, by which was faster for the shape. K·K strided patches stacked for one batched matMul
 * were slower than either (timings: bench/kernels/RESULTS.md).
 */
export function depthwiseBackpropFilter(
  tf: Tf,
  x: Tensor4D,
  dy: Tensor4D,
  attrs: ConvGradAttrs & { filterShape: [number, number, number, number] },
): Tensor4D {
  const info = convInfo(tf, 'DepthwiseConv2dNativeBackpropFilter', x.shape, attrs.filterShape, attrs, true);
  const simd = simdFor(tf);
  if (simd && attrs.filterShape[3] === 1 && x.dtype === 'float32' && dy.dtype === 'float32' && x.size > 0 && dy.size > 0) {
    return simd.output(attrs.filterShape, (out) => simd.kernels.depthwiseGrad(0, simd.address(x), simd.address(dy), out, ...geometry(info))) as Tensor4D;
  }
  const strided = info.strideHeight > 1 || info.strideWidth > 1;
  const byTaps = !strided && info.outHeight * info.outWidth > MAX_FAST_FILTER;
  return tf.tidy(() => tf.reshape(byTaps ? tapByTap(tf, x, dy, info) : asOneConv(tf, x, dy, info), attrs.filterShape));
}

/** The sizes the SIMD depthwise gradient kernel takes, in its order. */
function geometry(info: ConvInfo): number[] {
  return [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left];
}

/**
 * XNNPACK's depthwise conv is fast for filters up to 5×5 and for dilated ones; a larger dy as the
 * filter (stride 1, maps above 5×5) goes tap by tap, which bench/kernels measured faster.
 */
const MAX_FAST_FILTER = 25;

/**
 * One forward depthwise conv: batch and channels of x merge into N·C channels of a single image, dy
 * becomes the (oH×oW, multiplier M) filter, the stride becomes a dilation, and the N partial sums are
 * added.
 */
function asOneConv(tf: Tf, x: Tensor4D, dy: Tensor4D, info: ConvInfo): Tfjs.Tensor {
  const height = (info.outHeight - 1) * info.strideHeight + info.filterHeight;
  const width = (info.outWidth - 1) * info.strideWidth + info.filterWidth;
  const [n, , , c] = x.shape;
  const windowed = window(tf, x, info.padInfo.top, info.padInfo.left, height, width);
  const m = dy.shape[3] / c;
  const input = tf.reshape(tf.transpose(windowed, [1, 2, 0, 3]), [1, height, width, n * c]) as Tensor4D;
  const filter = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), [info.outHeight, info.outWidth, n * c, m]) as Tensor4D;
  const grad = tf.depthwiseConv2d(input, filter, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
  return tf.sum(tf.reshape(grad, [info.filterHeight * info.filterWidth, n, c * m]), 1);
}

/**
 * Stride 1, per tap: dy shifted into place by a pad, times x, summed over N, H, W. The window is
 * large enough for every shift, so nothing needs a (slow) slice.
 */
function tapByTap(tf: Tf, x: Tensor4D, dy: Tensor4D, info: ConvInfo): Tfjs.Tensor {
  const [n, h, w, c] = x.shape;
  const height = Math.max(info.padInfo.top + h, info.outHeight + info.filterHeight - 1);
  const width = Math.max(info.padInfo.left + w, info.outWidth + info.filterWidth - 1);
  const windowed = window(tf, x, info.padInfo.top, info.padInfo.left, height, width);
  const m = dy.shape[3] / c;
  const image = m === 1 ? windowed : tf.reshape(windowed, [n, height, width, c, 1]);
  const taps: Tfjs.Tensor[] = [];
  for (let kh = 0; kh < info.filterHeight; kh++) {
    for (let kw = 0; kw < info.filterWidth; kw++) {
      const shifted = window(tf, dy, kh, kw, height, width);
      const product = tf.mul(image, m === 1 ? shifted : tf.reshape(shifted, [n, height, width, c, m]));
      taps.push(tf.reshape(tf.sum(product, [0, 1, 2]), [c * m]));
    }
  }
  return tf.stack(taps);
}

/**
 * With multiplier 1, one pass of the SIMD kernel that adds each dy pixel times each filter tap into
 * the input pixel it came from (bench/kernels). Otherwise dx = the full
 * correlation of dy (dilated by the stride, padded by K−1−pad) with the spatially reversed filter, as
 * one depthwise conv over the C·M channels of dy, then summed over the multiplier.
 */
export function depthwiseBackpropInput(
  tf: Tf,
  dy: Tensor4D,
  filter: Tensor4D,
  attrs: ConvGradAttrs & { inputShape: [number, number, number, number] },
): Tensor4D {
  const info = convInfo(tf, 'DepthwiseConv2dNativeBackpropInput', attrs.inputShape, filter.shape, attrs, true);
  const [kh, kw, c, m] = filter.shape;
  const simd = simdFor(tf);
  if (simd && m === 1 && filter.dtype === 'float32' && dy.dtype === 'float32' && dy.size > 0 && filter.size > 0) {
    return simd.output(attrs.inputShape, (out) => simd.kernels.depthwiseGrad(1, simd.address(filter), simd.address(dy), out, ...geometry(info))) as Tensor4D;
  }
  return tf.tidy(() => {
    const padded = fullCorrelationInput(tf, dy, info);
    const flipped = tf.reshape(tf.reverse(filter, [0, 1]), [kh, kw, c * m, 1]);
    const dx = tf.depthwiseConv2d(padded, flipped as Tensor4D, 1, 'valid');
    if (m === 1) return dx;
    return tf.sum(tf.reshape(dx, [...attrs.inputShape, m]), 4) as Tensor4D;
  });
}
