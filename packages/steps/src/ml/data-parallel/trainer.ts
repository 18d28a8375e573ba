import type * as Tfjs from '@tensorflow/tfjs';
import type { BackendName, Tf } from '../../runtime/backend.js';
import { applyGradients } from '../../runtime/fused-adam.js';
import { ThreadGroup } from '../threads/thread-group.js';
import type { TensorSplit } from '../training.js';
import { gradientBlock, sharedFloats, type ReplicaRequest, type ReplicaSetup, type SharedSplit, type Sums } from './protocol.js';
import { shardDropout } from './sharded-dropout.js';
import { evaluateChunks, labelSmoothingOf, namedLoss, shareOut, sizeOf, sliceBounds, sliceGradients, sumInOrder } from './slices.js';

const REPLICA_SCRIPT = new URL('./replica-thread.js', import.meta.url);

type Splits = { train: TensorSplit; val?: TensorSplit | undefined };
type Grads = (Tfjs.Tensor | undefined)[];

/**
 * Trains a compiled model batch by batch, each batch computed in slices (slices.ts) that the main
 * thread and replica threads share out, each thread with its own wasm backend and, in a replica
 * thread, a replica of the model. The main thread keeps the model and its optimizer: for each batch
 * it publishes the trainable weights in shared memory (protocol.ts), adds up the slices' gradients
 * in slice order and applies one update. With one thread it starts no other and computes every
 * slice itself.
 */
export class DataParallelTrainer {
  private weightsVersion = 0;

  private constructor(
    private readonly tf: Tf,
    private readonly model: Tfjs.LayersModel,
    private readonly replicas: ThreadGroup<ReplicaRequest, Sums> | undefined,
    private readonly shared: { trainable: Float32Array; grads: Float32Array[] },
    private readonly train: TensorSplit,
    private readonly val: TensorSplit | undefined,
    private readonly classWeights: readonly number[] | undefined,
  ) {}

  /**
   * Starts `threads − 1` replica threads of the compiled `model` (planTraining picks `threads`) and
   * waits until all are ready; `batchSize` sizes the shared gradient blocks. `classWeights` (per class)
   * weigh each row's training loss.
   */
  static async start(tf: Tf, model: Tfjs.LayersModel, splits: Splits, threads: number, batchSize: number, classWeights?: readonly number[]): Promise<DataParallelTrainer> {
    shardDropout(tf, model);
    const size = model.trainableWeights.reduce((n, weight) => n + sizeOf(weight.shape), 0);
    const slicesPerThread = Math.ceil(sliceBounds(batchSize).length / threads);
    const shared = {
      trainable: sharedFloats(threads > 1 ? size : 0),
      grads: Array.from({ length: threads - 1 }, () => sharedFloats(size * slicesPerThread)),
    };
    const replicas = threads > 1 ? await startReplicas(tf, model, splits, shared, classWeights) : undefined;
    return new DataParallelTrainer(tf, model, replicas, shared, splits.train, splits.val, classWeights);
  }

  get threads(): number {
    return (this.replicas?.size ?? 0) + 1;
  }

  /** One optimizer step on the training split's `rows`; the batch's mean loss and how many rows it got right. */
  async trainBatch(rows: Int32Array): Promise<{ loss: number; correct: number }> {
    const slices = sliceBounds(rows.length);
    const runs = shareOut(slices.length, this.threads);
    this.publishWeights();
    const replies = this.askReplicas(runs, (first, end) => ({ kind: 'step', weights: this.weightsVersion, rows, first, end }));
    let own: { grads: Grads } & Sums;
    try {
      own = this.ownSlices(rows, slices.slice(0, runs[0]![1]));
    } catch (error) {
      await Promise.allSettled(replies);
      throw error;
    }
    try {
      const sums = await Promise.all(replies);
      this.addAndApply(own.grads, runs.slice(1).map(([first, end]) => end - first));
      const all = [own, ...sums.filter((s) => s !== undefined)];
      return { loss: sumInOrder(all.flatMap((s) => s.loss)), correct: sumInOrder(all.flatMap((s) => s.correct)) };
    } finally {
      this.tf.dispose(own.grads.filter((grad) => grad !== undefined));
    }
  }

  /** Mean loss and accuracy on the validation split, in chunks of `chunkRows` rows shared out between the threads. */
  async evaluate(chunkRows: number): Promise<{ loss: number; accuracy: number }> {
    const val = this.val;
    if (!val) throw new Error('the trainer was given no validation split');
    const runs = shareOut(Math.ceil(val.count / chunkRows), this.threads);
    this.publishWeights();
    const replies = this.askReplicas(runs, (first, end) => ({ kind: 'evaluate', weights: this.weightsVersion, first, end, chunkRows }));
    let own: Sums;
    try {
      const rows = Math.min(runs[0]![1] * chunkRows, val.count);
      own = this.tf.tidy(() => evaluateChunks(this.tf, this.model, this.tf.slice(val.x, 0, rows), this.tf.slice(val.y, 0, rows), chunkRows));
    } catch (error) {
      await Promise.allSettled(replies);
      throw error;
    }
    const all = [own, ...(await Promise.all(replies)).filter((s) => s !== undefined)];
    return { loss: sumInOrder(all.flatMap((s) => s.loss)) / val.count, accuracy: sumInOrder(all.flatMap((s) => s.correct)) / val.count };
  }

  async close(): Promise<void> {
    await this.replicas?.close();
  }

  /** Runs 1… of `runs` (the main thread takes run 0) to the replica threads; undefined for an empty run. */
  private askReplicas(runs: [number, number][], request: (first: number, end: number) => ReplicaRequest): Promise<Sums | undefined>[] {
    return runs.slice(1).map(([first, end], i) => (end > first ? this.replicas!.request(i, request(first, end)) : Promise.resolve(undefined)));
  }

  /** The main thread's slices, their gradients summed in slice order. */
  private ownSlices(rows: Int32Array, slices: [number, number][]): { grads: Grads } & Sums {
    const tf = this.tf;
    const sums: { grads: Grads } & Sums = { grads: [], loss: [], correct: [] };
    for (const [i, [start, end]] of slices.entries()) {
      const indices = tf.tensor1d(rows.subarray(start, end), 'int32');
      const [x, y] = [tf.gather(this.train.x, indices), tf.gather(this.train.y, indices)];
      const slice = sliceGradients(tf, this.model, x, y, { offset: start, batchSize: rows.length }, this.classWeights);
      tf.dispose([indices, x, y]);
      sums.loss.push(slice.loss);
      sums.correct.push(slice.correct);
      sums.grads = i === 0 ? slice.grads : addInOrder(tf, sums.grads, slice.grads);
    }
    return sums;
  }

  /**
   * Adds the replica threads' slice gradients (`slicesByThread[t]` blocks each) to the main thread's,
   * in slice order, and applies the sum with the model's optimizer. The main thread's slices decide
   * which weights get a gradient: the same ones in every slice.
   */
  private addAndApply(own: Grads, slicesByThread: number[]): void {
    const tf = this.tf;
    const weights = this.model.trainableWeights;
    const size = weights.reduce((n, weight) => n + sizeOf(weight.shape), 0);
    tf.tidy(() => {
      const named: Tfjs.NamedTensorMap = {};
      let offset = 0;
      weights.forEach((weight, i) => {
        const length = sizeOf(weight.shape);
        let grad = own[i];
        for (const [t, count] of slicesByThread.entries()) {
          for (let slice = 0; grad && slice < count; slice++) {
            const start = gradientBlock(slice, size) + offset;
            grad = tf.add(grad, tf.tensor(this.shared.grads[t]!.subarray(start, start + length), weight.shape as number[]));
          }
        }
        if (grad) named[(weight.read() as Tfjs.Variable).name] = grad;
        offset += length;
      });
      applyGradients(tf, this.model.optimizer, named);
    });
  }

  /** Copies the trainable weights where the replica threads read them and gives them a new version number. */
  private publishWeights(): void {
    if (!this.replicas) return;
    let offset = 0;
    for (const weight of this.model.trainableWeights) {
      const values = weight.read().dataSync() as Float32Array;
      this.shared.trainable.set(values, offset);
      offset += values.length;
    }
    this.weightsVersion += 1;
  }
}

/** Replica threads (one per `shared.grads`), ready to compute; none left running if one fails. */
async function startReplicas(tf: Tf, model: Tfjs.LayersModel, splits: Splits, shared: { trainable: Float32Array; grads: Float32Array[] }, classWeights: readonly number[] | undefined): Promise<ThreadGroup<ReplicaRequest, Sums>> {
  const setup: Omit<ReplicaSetup, 'grads'> = {
    backend: tf.getBackend() as BackendName,
    topology: model.toJSON(undefined, false) as object,
    loss: namedLoss(model)!,
    metrics: model.metricsNames.slice(1),
    labelSmoothing: labelSmoothingOf(model),
    ...(classWeights ? { classWeights: [...classWeights] } : {}),
    weights: model.getWeights().map((weight) => ({ shape: weight.shape, values: weight.dataSync() as Float32Array })),
    trainable: shared.trainable,
    train: await shareSplit(splits.train),
    ...(splits.val ? { val: await shareSplit(splits.val) } : {}),
  };
  const setups = shared.grads.map((grads) => ({ ...setup, grads }) satisfies ReplicaSetup);
  return ThreadGroup.start<ReplicaRequest, Sums>(REPLICA_SCRIPT, setups, 'training');
}

/** `sum[i] + next[i]` for each weight, disposing both; undefined stays undefined. */
function addInOrder(tf: Tf, sum: Grads, next: Grads): Grads {
  return sum.map((grad, i) => {
    const other = next[i];
    if (!grad || !other) {
      other?.dispose();
      return grad;
    }
    const added = tf.add(grad, other);
    tf.dispose([grad, other]);
    return added;
  });
}

async function shareSplit(split: TensorSplit): Promise<SharedSplit> {
  if (split.x.dtype !== 'float32') throw new Error(`data-parallel training needs float32 inputs, not ${split.x.dtype}`);
  const share = async (tensor: Tfjs.Tensor) => {
    const values = sharedFloats(tensor.size);
    values.set((await tensor.data()) as Float32Array);
    return values;
  };
  return { x: await share(split.x), y: await share(split.y), count: split.count };
}
