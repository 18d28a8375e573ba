import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../../runtime/backend.js';
import { allLayers } from '../model-graph.js';

/** Rows [offset, offset + rows) of a batch of `batchSize`, computed by one participant of a data-parallel step. */
export interface Shard {
  offset: number;
  batchSize: number;
}

type CallArgs = Record<string, unknown>;
type Call = (inputs: Tfjs.Tensor | Tfjs.Tensor[], kwargs: CallArgs) => Tfjs.Tensor | Tfjs.Tensor[];

interface DropoutLayer {
  rate: number;
  seed?: number;
  noiseShape?: (number | null)[];
  call: Call;
}

let current: Shard | undefined;
const patched = new WeakSet<object>();

/**
 * Runs `compute` as the shard `shard` of a batch: Dropout layers patched by `shardDropout` then drop
 * exactly the elements they would drop in the whole batch.
 */
export function withShard<T>(shard: Shard, compute: () => T): T {
  const outer = current;
  current = shard;
  try {
    return compute();
  } finally {
    current = outer;
  }
}

/**
 * tfjs's seeded Dropout draws its mask with `randomUniform(shape, seed)` on every call, so a shard of a
 * batch would get the first rows of a mask of its own shape, not its rows of the batch's mask. Patched
 * layers, inside `withShard`, draw the whole batch's mask and keep the shard's rows, which makes a
 * data-parallel step drop what the single-thread step drops. Outside `withShard`, and for unseeded
 * layers (random anyway), they run unchanged. Returns how many layers it patched.
 */
export function shardDropout(tf: Tf, model: Tfjs.LayersModel): number {
  let count = 0;
  for (const layer of allLayers(model)) {
    if (layer.getClassName() !== 'Dropout') continue;
    if (!patched.has(layer)) patch(tf, layer as unknown as DropoutLayer);
    patched.add(layer);
    count += 1;
  }
  return count;
}

function patch(tf: Tf, layer: DropoutLayer): void {
  const original = layer.call.bind(layer);
  layer.call = (inputs, kwargs) => {
    const shard = current;
    const perRow = layer.noiseShape?.[0] == null;
    if (!shard || kwargs['training'] !== true || !(layer.rate > 0 && layer.rate < 1) || layer.seed == null || !perRow) return original(inputs, kwargs);
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    return tf.tidy(() => {
      const noiseShape = x.shape.map((size, axis) => layer.noiseShape?.[axis] ?? size);
      const whole = tf.randomUniform([shard.batchSize, ...noiseShape.slice(1)], 0, 1, 'float32', layer.seed);
      const rows = tf.slice(whole, [shard.offset, ...noiseShape.slice(1).map(() => 0)], noiseShape);
      const keep = 1 - layer.rate;
      return tf.mul(x, tf.div(tf.floor(tf.add(rows, keep)), keep));
    });
  };
}
