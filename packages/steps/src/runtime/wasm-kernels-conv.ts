import type * as Tfjs from '@tensorflow/tfjs';
import { convInfo, dilate, window, type ConvGradAttrs, type Tensor4D } from './wasm-kernels-util.js';
import type { Tf } from './tf.js';

type ConvInfo = Tfjs.backend_util.Conv2DInfo;

/**
 * dW[kh,kw,ci,co] = Σ_{n,oh,ow} x[n, oh·s+kh-pad, ow·s+kw-pad, ci] · dy[n,oh,ow,co]. A pointwise conv's
 * is one matMul, xᵀ·dy (with explicit transposes: stock wasm's matMul with transposeA is a naive
 * loop, see wasm-kernels-overrides.ts). Others are one forward Conv2D: channels of x become the
 * batch, the batch becomes the channels, dy becomes the filter, and the stride becomes a dilation.
 */
export function conv2dBackpropFilter(
  tf: Tf,
  x: Tensor4D,
  dy: Tensor4D,
  attrs: ConvGradAttrs & { filterShape: [number, number, number, number] },
): Tensor4D {
  const info = convInfo(tf, 'Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs, false);
  if (isPointwise(info)) return tf.tidy(() => tf.reshape(pointwiseFilterGrad(tf, x, dy), attrs.filterShape));
  const neededHeight = (info.outHeight - 1) * info.strideHeight + info.filterHeight;
  const neededWidth = (info.outWidth - 1) * info.strideWidth + info.filterWidth;
  return tf.tidy(() => {
    const input = tf.transpose(window(tf, x, info.padInfo.top, info.padInfo.left, neededHeight, neededWidth), [3, 1, 2, 0]);
    const filter = tf.transpose(dy, [1, 2, 0, 3]); // [oh, ow, n, co]
    const grad = tf.conv2d(input, filter, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
    return tf.transpose(grad, [1, 2, 0, 3]); // [kh, kw, ci, co]
  });
}

/**
 * dx = the full correlation of dy (dilated by the stride) with the spatially reversed filter, its
 * in and out channels swapped: one forward Conv2D, which wasm runs through XNNPACK, where wasm's own
 * Conv2DBackpropInput is a plain loop, several times slower (bench/kernels/RESULTS.md; BENCHMARKS.md,
 * "bench/kernels: training kernels on wasm"). A pointwise conv's is dy·Wᵀ.
 */
export function conv2dBackpropInput(
  tf: Tf,
  dy: Tensor4D,
  filter: Tensor4D,
  attrs: ConvGradAttrs & { inputShape: [number, number, number, number] },
): Tensor4D {
  const info = convInfo(tf, 'Conv2DBackpropInput', attrs.inputShape, filter.shape, attrs, false);
  if (isPointwise(info)) {
    const [ci, co] = [info.inChannels, info.outChannels];
    return tf.tidy(() => tf.reshape(tf.matMul(tf.reshape(dy, [-1, co]), tf.transpose(tf.reshape(filter, [ci, co]))), attrs.inputShape));
  }
  return tf.tidy(() => {
    const padded = fullCorrelationInput(tf, dy, info);
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    return tf.conv2d(padded, flipped as Tensor4D, 1, 'valid');
  });
}

/** dy dilated by the stride and padded by K−1−pad, so a valid correlation with the reversed filter gives dx. */
export function fullCorrelationInput(tf: Tf, dy: Tensor4D, info: ConvInfo): Tensor4D {
  const dilated = dilate(tf, dy, info.strideHeight, info.strideWidth);
  const top = info.filterHeight - 1 - info.padInfo.top;
  const left = info.filterWidth - 1 - info.padInfo.left;
  return window(tf, dilated, top, left, info.inHeight + info.filterHeight - 1, info.inWidth + info.filterWidth - 1);
}

/**
 * xᵀ·dy as [ci, co]. XNNPACK packs matMul's second operand on every call (a cost per element), so the
 * narrower of x and dy goes second and the other is transposed first.
 */
function pointwiseFilterGrad(tf: Tf, x: Tensor4D, dy: Tensor4D): Tfjs.Tensor2D {
  const [ci, co] = [x.shape[3], dy.shape[3]];
  const [x2, dy2] = [tf.reshape(x, [-1, ci]), tf.reshape(dy, [-1, co])];
  if (co <= ci) return tf.matMul(tf.transpose(x2), dy2);
  return tf.transpose(tf.matMul(tf.transpose(dy2), x2)) as Tfjs.Tensor2D;
}

/** 1×1, stride 1, no padding: x and dx are [N·H·W, C] matrices. */
function isPointwise(info: ConvInfo): boolean {
  const { top, bottom, left, right } = info.padInfo;
  return info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1 && top + bottom + left + right === 0;
}
