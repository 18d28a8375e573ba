import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import { RuntimeUserError } from './errors.js';

/**
 * How images must be prepared for a model, as data: steps apply it and record it with their outputs,
 * so a model trained on one preprocessing is never fed another.
 */
export interface Preprocessing {
  /** Images are resized to inputSize × inputSize. */
  inputSize: number;
  channels: 1 | 3;
  /** Pixel values 0..255 map linearly onto [range[0], range[1]]. */
  range: [number, number];
  resize: 'bilinear';
}

export function isPreprocessing(value: unknown): value is Preprocessing {
  const p = value as Partial<Preprocessing> | null;
  return (
    typeof p === 'object' && p !== null && Number.isInteger(p.inputSize) && (p.channels === 1 || p.channels === 3) &&
    Array.isArray(p.range) && p.range.length === 2 && p.range.every((v) => typeof v === 'number') && p.resize === 'bilinear'
  );
}

/** "96×96 rgb, pixels → [-1, 1], bilinear": for logs and run records. */
export function describePreprocessing(p: Preprocessing): string {
  return `${p.inputSize}×${p.inputSize} ${p.channels === 3 ? 'rgb' : 'grayscale'}, pixels → [${p.range[0]}, ${p.range[1]}], ${p.resize}`;
}

/**
 * Turns images with pixel values 0..255 ([n,h,w,c] or [h,w,c]; c = 1, 3 or 4) into the model's input:
 * resized, with the channels it wants, scaled to its range. The caller owns the result.
 */
export function toModelInput(tf: Tf, pixels: Tfjs.Tensor, p: Preprocessing): Tfjs.Tensor4D {
  return tf.tidy(() => {
    let x = pixels.toFloat();
    if (x.rank === 3) x = x.expandDims(0);
    if (x.rank !== 4) throw new RuntimeUserError(`images must be [n, h, w, c] or [h, w, c], got shape [${pixels.shape.join(', ')}]`);
    let images = matchChannels(tf, x as Tfjs.Tensor4D, p.channels);
    if (images.shape[1] !== p.inputSize || images.shape[2] !== p.inputSize) {
      images = tf.image.resizeBilinear(images, [p.inputSize, p.inputSize], false, true);
    }
    const [low, high] = p.range;
    return images.mul((high - low) / 255).add(low) as Tfjs.Tensor4D;
  });
}

function matchChannels(tf: Tf, x: Tfjs.Tensor4D, channels: 1 | 3): Tfjs.Tensor4D {
  const have = x.shape[3];
  if (have === 4) return matchChannels(tf, x.slice([0, 0, 0, 0], [-1, -1, -1, 3]), channels);
  if (have === channels) return x;
  if (have === 1 && channels === 3) return tf.concat([x, x, x], 3); // concat, not tile: Tile is slow on wasm
  if (have === 3 && channels === 1) return x.mul(tf.tensor1d([0.299, 0.587, 0.114])).sum(3, true) as Tfjs.Tensor4D;
  throw new RuntimeUserError(`images have ${have} channels; the model wants ${channels}`);
}
