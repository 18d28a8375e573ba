import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../../runtime/backend.js';
import { withShard, type Shard } from './sharded-dropout.js';

/*
 * The arithmetic of a data-parallel step, shared by the main thread and the replicas in other threads.
 * A batch is cut into slices of SLICE_ROWS rows. For each slice a participant computes the sum of its
 * rows' losses divided by the size of the whole batch, and the gradients of that: the slices'
 * gradients add up to those of the batch's mean loss, the gradient tfjs's `fit` applies. They are
 * added in slice order, whichever thread computed which slice, so every number of threads gives the
 * same bits. That matters: with Adam, a difference in the last bit of a gradient near zero changes
 * the step's sign, and over an epoch of a MobileNetV2 fine-tune such differences grow like a change
 * of seed would (bench/kernels/RESULTS.md, "Data-parallel step").
 */

/** Rows of a batch one thread computes at a time: small enough to share a batch of 32, large enough to run near full-batch speed. */
export const SLICE_ROWS = 16;

type LossOrMetric = (yTrue: Tfjs.Tensor, yPred: Tfjs.Tensor) => Tfjs.Tensor;

/** What tfjs-layers keeps from `compile` that a step needs (not in its public typings). */
interface Compiled {
  loss: unknown;
  lossFunctions: LossOrMetric[];
  metricsTensors: [LossOrMetric, number][];
  calculateLosses(): Tfjs.Scalar[];
}

/** A Sequential model keeps what `compile` made in the functional model inside it. */
function compiledOf(model: Tfjs.LayersModel): Compiled {
  const compiled = model as unknown as Compiled & { model?: Compiled };
  return compiled.lossFunctions ? compiled : (compiled.model ?? compiled);
}

/** The named loss a compiled model trains with, or undefined if it is a function or several. */
export function namedLoss(model: Tfjs.LayersModel): string | undefined {
  const loss = compiledOf(model).loss;
  const single = Array.isArray(loss) && loss.length === 1 ? loss[0] : loss;
  return typeof single === 'string' ? single : undefined;
}

/** The slices of a batch of `rows` rows: [start, end) each, all SLICE_ROWS long but the last. */
export function sliceBounds(rows: number): [number, number][] {
  const bounds: [number, number][] = [];
  for (let start = 0; start < rows; start += SLICE_ROWS) bounds.push([start, Math.min(start + SLICE_ROWS, rows)]);
  return bounds;
}

/** `count` items dealt to `participants` in contiguous runs [first, end), as equal as can be, the first ones one larger. */
export function shareOut(count: number, participants: number): [number, number][] {
  const base = Math.floor(count / participants);
  const larger = count % participants;
  const runs: [number, number][] = [];
  for (let i = 0, first = 0; i < participants; i++) {
    const end = first + base + (i < larger ? 1 : 0);
    runs.push([first, end]);
    first = end;
  }
  return runs;
}

export interface SliceGradients {
  /** One per trainable weight, in `model.trainableWeights` order; undefined where the loss does not depend on it. */
  grads: (Tfjs.Tensor | undefined)[];
  /** This slice's part of the batch's mean loss (its rows' summed loss over the batch size). */
  loss: number;
  /** Rows the model got right, by the model's first metric (NaN without one). */
  correct: number;
}

/**
 * Loss and gradients for rows [shard.offset, shard.offset + x's rows) of a batch of shard.batchSize;
 * with `classWeights` (per class), each row's loss × its class's weight, as tfjs's `fit` weighs it.
 */
export function sliceGradients(tf: Tf, model: Tfjs.LayersModel, x: Tfjs.Tensor, y: Tfjs.Tensor, shard: Shard, classWeights?: readonly number[]): SliceGradients {
  const compiled = compiledOf(model);
  const variables = model.trainableWeights.map((weight) => weight.read() as Tfjs.Variable);
  const share = (x.shape[0] ?? 0) / shard.batchSize;
  let correct: Tfjs.Scalar | undefined;
  const { value, grads } = withShard(shard, () =>
    tf.variableGrads(() => {
      const output = model.apply(x, { training: true }) as Tfjs.Tensor;
      correct = tf.keep(correctCount(tf, compiled, y, output));
      const rowLosses = compiled.lossFunctions[0]!(y, output);
      const loss = tf.div(tf.sum(classWeights ? tf.mul(rowLosses, rowWeights(tf, y, classWeights)) : rowLosses), shard.batchSize);
      const penalties = compiled.calculateLosses();
      return (penalties.length === 0 ? loss : tf.add(loss, tf.mul(tf.addN(penalties), share))) as Tfjs.Scalar;
    }, variables),
  );
  const result = { grads: variables.map((variable) => grads[variable.name]), loss: value.dataSync()[0]!, correct: correct!.dataSync()[0]! };
  tf.dispose([value, correct!]);
  return result;
}

/** Loss sum and correct predictions per chunk of `chunkRows` rows of x (from its first row), in inference mode. */
export function evaluateChunks(tf: Tf, model: Tfjs.LayersModel, x: Tfjs.Tensor, y: Tfjs.Tensor, chunkRows: number): { loss: number[]; correct: number[] } {
  const compiled = compiledOf(model);
  const rows = x.shape[0] ?? 0;
  const sums = { loss: [] as number[], correct: [] as number[] };
  for (let start = 0; start < rows; start += chunkRows) {
    const size = Math.min(chunkRows, rows - start);
    const [loss, correct] = tf.tidy(() => {
      const [xs, ys] = [tf.slice(x, start, size), tf.slice(y, start, size)];
      const output = model.apply(xs, { training: false }) as Tfjs.Tensor;
      const penalties = compiled.calculateLosses();
      const summed = tf.sum(compiled.lossFunctions[0]!(ys, output));
      const total = penalties.length === 0 ? summed : tf.add(summed, tf.mul(tf.addN(penalties), size));
      return [total.dataSync()[0]!, correctCount(tf, compiled, ys, output).dataSync()[0]!];
    });
    sums.loss.push(loss);
    sums.correct.push(correct);
  }
  return sums;
}

/** Each row's class weight. */
function rowWeights(tf: Tf, y: Tfjs.Tensor, classWeights: readonly number[]): Tfjs.Tensor {
  return tf.gather(tf.tensor1d(classWeights as number[], 'float32'), classOfRows(tf, y));
}

/** The class of each row of `y` (int32): of a one-hot row its largest column, of a binary one its 0/1 value. */
export function classOfRows(tf: Tf, y: Tfjs.Tensor): Tfjs.Tensor {
  return y.shape[1] === 1 ? tf.cast(tf.reshape(y, [-1]), 'int32') : tf.argMax(y, 1);
}

type SmoothedLoss = LossOrMetric & { labelSmoothing?: number };

/**
 * Keras's label smoothing in the compiled model's loss: targets y·(1 − ε) + ε/K, K the classes (2 for
 * one sigmoid output). Changing the loss function itself makes tfjs's `fit`, its `evaluate` and the
 * slices here compute the same loss; the metrics still see the true labels.
 */
export function smoothLabels(tf: Tf, model: Tfjs.LayersModel, epsilon: number): void {
  if (!epsilon) return;
  const compiled = compiledOf(model);
  compiled.lossFunctions = compiled.lossFunctions.map((loss) => {
    const smoothed: SmoothedLoss = (yTrue, yPred) => loss(tf.add(tf.mul(yTrue, 1 - epsilon), epsilon / Math.max(2, yTrue.shape[1] ?? 1)), yPred);
    smoothed.labelSmoothing = epsilon;
    return smoothed;
  });
}

/** The ε `smoothLabels` gave the model's loss (0: none). */
export function labelSmoothingOf(model: Tfjs.LayersModel): number {
  return (compiledOf(model).lossFunctions[0] as SmoothedLoss | undefined)?.labelSmoothing ?? 0;
}

/** Values in a tensor of this shape (a weight's shape has no unknown sizes). */
export function sizeOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((n, d) => n * (d ?? 1), 1);
}

/** Sums numbers in the order given: the order the threads' partial results are combined in. */
export function sumInOrder(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0);
}

function correctCount(tf: Tf, compiled: Compiled, y: Tfjs.Tensor, output: Tfjs.Tensor): Tfjs.Scalar {
  const metric = compiled.metricsTensors[0]?.[0];
  return metric ? tf.sum(metric(y, output)) : tf.scalar(Number.NaN);
}
