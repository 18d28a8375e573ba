import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../../runtime/backend.js';
import { batchNormTrains } from '../../runtime/batch-norm.js';
import { allLayers } from '../model-graph.js';
import { threadsFor } from '../threads/thread-count.js';
import { SLICE_ROWS, namedLoss } from './slices.js';

/** How a model trains: each batch computed in slices shared between `threads` threads, or by tfjs's `fit`. */
export interface TrainingPlan {
  /**
   * Batches computed in slices (slices.ts), which gives the same bits on any number of threads and
   * each step tfjs's `fit` step within float rounding; false: tfjs's `fit` on this thread.
   */
  sliced: boolean;
  /** Threads that share a batch, this one counting as one. */
  threads: number;
  /** Why one thread where the split had work for more. */
  oneThreadBecause?: string;
}

export interface PlanInput {
  /** Rows of the training split. */
  samples: number;
  batchSize: number;
  /** Threads wanted; absent, those `threadsFor` gives the split for the user's `requestedThreads`. */
  threads?: number | undefined;
  /** The user's thread count (`ctx.settings.threads`: --workers, else one per core). */
  requestedThreads?: number | undefined;
}

/** Layers whose output depends on the batch they see, not only on each row. */
const BATCH_DEPENDENT = ['GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'SpatialDropout1D'];

/**
 * Whether to train `model` in slices and on how many threads: the one place that decides. No more
 * threads than a batch has slices; tfjs's `fit` where slicing would change more than rounding.
 */
export function planTraining(tf: Tf, model: Tfjs.LayersModel, input: PlanInput): TrainingPlan {
  const wanted = input.threads ?? threadsFor(input.samples, input.batchSize, input.requestedThreads);
  const obstacle = dataParallelObstacle(tf, model);
  if (obstacle) return { sliced: false, threads: 1, ...(wanted > 1 ? { oneThreadBecause: obstacle } : {}) };
  const threads = Math.max(1, Math.min(wanted, Math.ceil(input.batchSize / SLICE_ROWS)));
  if (wanted > 1 && threads === 1) return { sliced: true, threads, oneThreadBecause: `threads share a batch in slices of ${SLICE_ROWS} rows, and a batch of ${input.batchSize} is one` };
  return { sliced: true, threads };
}

/**
 * Why computing a batch in slices would change the step by more than float rounding (or, on a
 * multi-threaded native backend, gain nothing), or undefined. Dropout is no obstacle (see
 * sharded-dropout.ts); batch statistics are.
 */
function dataParallelObstacle(tf: Tf, model: Tfjs.LayersModel): string | undefined {
  if (tf.getBackend() !== 'wasm') return `the ${tf.getBackend()} backend is not the single-threaded wasm one`;
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return 'the model has more than one input or output';
  if (!namedLoss(model)) return 'the loss is not one named loss';
  for (const layer of allLayers(model)) {
    const name = layer.getClassName();
    if (name === 'BatchNormalization' && batchNormTrains(layer, true)) return `${layer.name} normalises with batch statistics`;
    if (BATCH_DEPENDENT.includes(name)) return `${layer.name} (${name}) is not split over threads`;
    if ((layer as unknown as { activityRegularizer?: unknown }).activityRegularizer) return `${layer.name} has an activity regularizer`;
  }
  return undefined;
}
