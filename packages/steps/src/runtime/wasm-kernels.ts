import type * as Tfjs from '@tensorflow/tfjs';

type Tf = typeof Tfjs;
type Tensor4D = Tfjs.Tensor4D;

interface BackpropFilterAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | Tfjs.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/**
 * Registers the kernels tfjs-backend-wasm lacks and training needs. Conv2DBackpropFilter (the
 * gradient of a conv layer's kernel) is missing on wasm, so no conv layer could train there.
 * Idempotent.
 */
export function registerWasmKernels(tf: Tf): void {
  if (tf.getKernel('Conv2DBackpropFilter', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs }) => {
      const x = asTensor(tf, inputs['x']) as Tensor4D;
      const dy = asTensor(tf, inputs['dy']) as Tensor4D;
      return conv2dBackpropFilter(tf, x, dy, attrs as unknown as BackpropFilterAttrs);
    },
  });
}

/**
 * dW[kh,kw,ci,co] = Σ_{n,oh,ow} x[n, oh·s+kh-pad, ow·s+kw-pad, ci] · dy[n,oh,ow,co], computed as one
 * forward Conv2D (a kernel wasm has): channels of x become the batch, the batch becomes the channels,
 * dy becomes the filter, and the stride becomes a dilation.
 */
export function conv2dBackpropFilter(tf: Tf, x: Tensor4D, dy: Tensor4D, attrs: BackpropFilterAttrs): Tensor4D {
  if (attrs.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const neededHeight = (info.outHeight - 1) * info.strideHeight + info.filterHeight;
  const neededWidth = (info.outWidth - 1) * info.strideWidth + info.filterWidth;
  return tf.tidy(() => {
    const window = cropOrPad(tf, x, info.padInfo.top, info.padInfo.left, neededHeight, neededWidth);
    const input = tf.transpose(window, [3, 1, 2, 0]); // [ci, H, W, n]
    const filter = tf.transpose(dy, [1, 2, 0, 3]); // [oh, ow, n, co]
    const grad = tf.conv2d(input, filter, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]);
    return tf.transpose(grad, [1, 2, 0, 3]); // [kh, kw, ci, co]
  });
}

/** Pads `top`/`left` zeros, then pads or crops the bottom/right so the spatial size is exactly height×width. */
function cropOrPad(tf: Tf, x: Tensor4D, top: number, left: number, height: number, width: number): Tensor4D {
  const [, h, w] = x.shape;
  const bottom = Math.max(0, height - top - h);
  const right = Math.max(0, width - left - w);
  const padded = top || left || bottom || right ? tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]) : x;
  if (padded.shape[1] === height && padded.shape[2] === width) return padded;
  return tf.slice(padded, [0, 0, 0, 0], [-1, height, width, -1]);
}

function asTensor(tf: Tf, info: Tfjs.TensorInfo | undefined): Tfjs.Tensor {
  if (!info) throw new Error('missing kernel input');
  if (info instanceof tf.Tensor) return info;
  return tf.engine().makeTensorFromTensorInfo(info);
}
