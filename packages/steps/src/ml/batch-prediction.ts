import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../runtime/backend.js';
import { toModelInput, type Preprocessing } from '../runtime/preprocessing.js';

/** A model's output on one batch, and with test-time augmentation its output on the batch mirrored. */
export interface BatchOutput {
  output: Float32Array;
  /** The output on every image flipped left to right; only when asked for. */
  flipped?: Float32Array;
}

/**
 * Runs `predict` on a batch of 0..255 RGB pixels ([count, size, size, 3]) prepared as `preprocessing`
 * says. With `flip`, also on the prepared batch reversed along its width (NHWC axis 2), as a second
 * call on a batch of the same shape, so the plain output is the same bytes either way.
 */
export async function predictBatch(
  tf: Tf, predict: (input: Tfjs.Tensor) => Tfjs.Tensor, batch: { images: Uint8Array; count: number },
  o: { size: number; preprocessing: Preprocessing; flip: boolean },
): Promise<BatchOutput> {
  const outputs = tf.tidy(() => {
    const pixels = tf.tensor4d(batch.images, [batch.count, o.size, o.size, 3], 'int32');
    const input = toModelInput(tf, pixels, o.preprocessing);
    return o.flip ? [predict(input), predict(tf.reverse(input, 2))] : [predict(input)];
  });
  try {
    const [output, flipped] = (await Promise.all(outputs.map((tensor) => tensor.data()))) as Float32Array[];
    return flipped ? { output: output!, flipped } : { output: output! };
  } finally {
    for (const tensor of outputs) tensor.dispose();
  }
}

/** Test-time augmentation's prediction: the mean of the outputs on the images and on their mirror images. */
export function flipAveraged({ output, flipped }: BatchOutput): Float32Array {
  if (!flipped) throw new Error('no output on the flipped batch to average with');
  return Float32Array.from(output, (value, i) => (value + flipped[i]!) / 2);
}
