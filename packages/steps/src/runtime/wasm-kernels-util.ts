import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

export type Tensor4D = Tfjs.Tensor4D;
export type Pad = 'valid' | 'same' | number | Tfjs.backend_util.ExplicitPadding;

/** The attributes every conv gradient kernel gets (the filter or input shape comes separately). */
export interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: [number, number] | number;
  dataFormat?: 'NHWC' | 'NCHW';
}

/** Geometry of an NHWC conv; throws for what these kernels do not implement (NCHW, dilated gradients). */
export function convInfo(
  tf: Tf,
  kernel: string,
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: ConvGradAttrs,
  depthwise: boolean,
): Tfjs.backend_util.Conv2DInfo {
  if (attrs.dataFormat === 'NCHW') throw new Error(`${kernel} on wasm supports NHWC only`);
  const dilations = attrs.dilations ?? 1;
  if (!(dilations === 1 || (Array.isArray(dilations) && dilations.every((d) => d === 1)))) {
    throw new Error(`${kernel} on wasm supports dilation 1 only`);
  }
  return tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}

/**
 * The height×width window of x whose top-left corner is at (-top, -left): zeros where it lies outside
 * x. A negative top or left crops instead of padding.
 */
export function window(tf: Tf, x: Tensor4D, top: number, left: number, height: number, width: number): Tensor4D {
  const [, h, w] = x.shape;
  const padding: [number, number][] = [
    [0, 0],
    [Math.max(0, top), Math.max(0, height - top - h)],
    [Math.max(0, left), Math.max(0, width - left - w)],
    [0, 0],
  ];
  const padded = padding.some(([a, b]) => a > 0 || b > 0) ? tf.pad(x, padding) : x;
  const begin = [0, Math.max(0, -top), Math.max(0, -left), 0];
  if (begin.every((b) => b === 0) && padded.shape[1] === height && padded.shape[2] === width) return padded;
  return tf.slice(padded, begin, [-1, height, width, -1]);
}

/**
 * Inserts stride−1 zeros after every row and column of dy: [n, h·sh, w·sw, c]. Pads of rank-4
 * reshapes only, since pads and slices above rank 4 are slow on wasm.
 */
export function dilate(tf: Tf, dy: Tensor4D, strideHeight: number, strideWidth: number): Tensor4D {
  const [n, h, w, c] = dy.shape;
  if (strideHeight === 1 && strideWidth === 1) return dy;
  const columns = tf.pad(tf.reshape(dy, [n * h, w, 1, c]), [[0, 0], [0, 0], [0, strideWidth - 1], [0, 0]]);
  const rows = tf.pad(tf.reshape(columns, [n * h, 1, w * strideWidth, c]), [[0, 0], [0, strideHeight - 1], [0, 0], [0, 0]]);
  return tf.reshape(rows, [n, h * strideHeight, w * strideWidth, c]);
}

export function asTensor(tf: Tf, info: Tfjs.TensorInfo | undefined): Tfjs.Tensor {
  if (!info) throw new Error('missing kernel input');
  if (info instanceof tf.Tensor) return info;
  return tf.engine().makeTensorFromTensorInfo(info);
}
