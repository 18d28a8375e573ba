import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import type { BackendName, Tf } from '../runtime/backend.js';
import { applyGradients } from '../runtime/fused-adam.js';
import { SLICE_ROWS, evaluateChunks, namedLoss, shareOut, sizeOf, sliceBounds, sliceGradients, sumInOrder } from './data-parallel.js';
import { shardDropout } from './sharded-dropout.js';
import type { TensorSplit } from './training.js';
import { startWorker } from './worker-start.js';

const WORKER_SCRIPT = new URL('./train-worker.js', import.meta.url);

/** A split in shared memory: every worker reads the rows it needs without a copy of the whole split. */
export interface SharedSplit {
  x: Float32Array;
  y: Float32Array;
  count: number;
}

/** What a worker needs to hold a replica of the model being trained. */
export interface ReplicaSetup {
  backend: BackendName;
  /** `model.toJSON()`: layers, their wiring and which are trainable. */
  topology: object;
  loss: string;
  metrics: string[];
  /** Every weight of the model (`model.weights` order), copied once. */
  weights: { shape: number[]; values: Float32Array }[];
  /** Shared: the trainable weights as the main thread last published them, one after another. */
  trainable: Float32Array;
  /** Shared: where this worker writes the gradients of its slices, one `trainable`-sized block per slice. */
  grads: Float32Array;
  train: SharedSplit;
  val?: SharedSplit;
}

/**
 * `weights`: the version of `trainable` to compute with (the worker reloads it when it changed).
 * A step computes slices [first, end) of the batch `rows`; an evaluation, chunks [first, end) of
 * `chunkRows` rows of the validation split.
 */
export type ReplicaRequest =
  | { id: number; kind: 'step'; weights: number; rows: Int32Array; first: number; end: number }
  | { id: number; kind: 'evaluate'; weights: number; first: number; end: number; chunkRows: number };

/** Per slice or chunk, in order: its loss sum and its correct predictions. */
export type Sums = { loss: number[]; correct: number[] };
export type ReplicaReply = ({ id: number } & Sums) | { id: number; error: string };

type StepRequest = Omit<Extract<ReplicaRequest, { kind: 'step' }>, 'id'>;
type EvaluateRequest = Omit<Extract<ReplicaRequest, { kind: 'evaluate' }>, 'id'>;

/**
 * Threads to train on: $HEADSTART_WORKERS (the CLI's --workers), else one per core, the main thread
 * counting as one; one when the training split is too small to pay for starting replicas.
 */
export function trainingThreads(samples: number, batchSize: number): number {
  const requested = Number(process.env['HEADSTART_WORKERS'] ?? availableParallelism());
  if (!Number.isInteger(requested) || requested < 2) return 1;
  return samples >= requested * batchSize * 4 ? requested : 1;
}

/**
 * Trains a compiled model batch by batch, each batch computed in slices (data-parallel.ts) that the
 * main thread and worker threads share out, each thread with its own wasm backend and, in a worker,
 * a replica of the model. The main thread keeps the model and its optimizer: for each batch it
 * publishes the trainable weights in shared memory, adds up the slices' gradients in slice order and
 * applies one update. With one thread it starts no worker and computes every slice itself.
 */
export class DataParallelTrainer {
  private readonly pending = new Map<number, { resolve(sums: Sums): void; reject(error: Error): void }>();
  private nextId = 0;
  private weightsVersion = 0;
  /** Set once a worker failed or the trainer was closed: no request can be answered after that. */
  private failure: Error | undefined;

  private constructor(
    private readonly tf: Tf,
    private readonly model: Tfjs.LayersModel,
    private readonly workers: Worker[],
    private readonly shared: { trainable: Float32Array; grads: Float32Array[] },
    private readonly train: TensorSplit,
    private readonly val: TensorSplit | undefined,
  ) {
    for (const worker of workers) {
      worker.on('message', (reply: ReplicaReply) => this.settle(reply));
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => this.fail(new Error(`a training worker exited (code ${code})`)));
    }
  }

  /**
   * Starts the workers (as many as a batch of `batchSize` has slices for, up to `threads`, the main
   * thread counting as one), each with a replica of the compiled `model`, and waits until all are ready.
   */
  static async start(tf: Tf, model: Tfjs.LayersModel, split: { train: TensorSplit; val?: TensorSplit | undefined }, threads: number, batchSize: number): Promise<DataParallelTrainer> {
    shardDropout(tf, model);
    const slices = Math.ceil(batchSize / SLICE_ROWS);
    const participants = Math.max(1, Math.min(threads, slices));
    const size = model.trainableWeights.reduce((n, weight) => n + sizeOf(weight.shape), 0);
    const slicesPerWorker = Math.ceil(slices / participants);
    const shared = {
      trainable: sharedFloats(participants > 1 ? size : 0),
      grads: Array.from({ length: participants - 1 }, () => sharedFloats(size * slicesPerWorker)),
    };
    const workers = participants > 1 ? await startReplicas(tf, model, split, shared) : [];
    return new DataParallelTrainer(tf, model, workers, shared, split.train, split.val);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /** One optimizer step on the training split's `rows`; the batch's mean loss and how many rows it got right. */
  async trainBatch(rows: Int32Array): Promise<{ loss: number; correct: number }> {
    const slices = sliceBounds(rows.length);
    const runs = shareOut(slices.length, this.threads);
    this.publishWeights();
    const replies = runs.slice(1).map(([first, end], i) => (end > first ? this.request(this.workers[i]!, { kind: 'step', weights: this.weightsVersion, rows, first, end }) : undefined));
    let own: { grads: (Tfjs.Tensor | undefined)[] } & Sums;
    try {
      own = this.ownSlices(rows, slices.slice(0, runs[0]![1]));
    } catch (error) {
      await Promise.allSettled(replies);
      throw error;
    }
    try {
      const sums = await Promise.all(replies);
      this.applyGradients(own.grads, runs.slice(1).map(([first, end]) => end - first));
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
    const replies = runs.slice(1).map(([first, end], i) => (end > first ? this.request(this.workers[i]!, { kind: 'evaluate', weights: this.weightsVersion, first, end, chunkRows }) : undefined));
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
    for (const worker of this.workers) worker.removeAllListeners('exit');
    this.fail(new Error('the trainer was closed'));
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  /** The main thread's slices, their gradients summed in slice order. */
  private ownSlices(rows: Int32Array, slices: [number, number][]): { grads: (Tfjs.Tensor | undefined)[] } & Sums {
    const tf = this.tf;
    const sums: { grads: (Tfjs.Tensor | undefined)[] } & Sums = { grads: [], loss: [], correct: [] };
    for (const [i, [start, end]] of slices.entries()) {
      const indices = tf.tensor1d(rows.subarray(start, end), 'int32');
      const [x, y] = [tf.gather(this.train.x, indices), tf.gather(this.train.y, indices)];
      const slice = sliceGradients(tf, this.model, x, y, { offset: start, batchSize: rows.length });
      tf.dispose([indices, x, y]);
      sums.loss.push(slice.loss);
      sums.correct.push(slice.correct);
      sums.grads = i === 0 ? slice.grads : addInOrder(tf, sums.grads, slice.grads);
    }
    return sums;
  }

  /**
   * Adds the workers' slice gradients (`slicesByWorker[w]` blocks each) to the main thread's, in slice
   * order, and applies the sum with the model's optimizer. The main thread's slices decide which
   * weights get a gradient: the same ones in every slice.
   */
  private applyGradients(own: (Tfjs.Tensor | undefined)[], slicesByWorker: number[]): void {
    const tf = this.tf;
    const weights = this.model.trainableWeights;
    const size = weights.reduce((n, weight) => n + sizeOf(weight.shape), 0);
    tf.tidy(() => {
      const named: Tfjs.NamedTensorMap = {};
      let offset = 0;
      weights.forEach((weight, i) => {
        const length = sizeOf(weight.shape);
        let grad = own[i];
        for (const [w, count] of slicesByWorker.entries()) {
          for (let slice = 0; grad && slice < count; slice++) {
            const start = slice * size + offset;
            grad = tf.add(grad, tf.tensor(this.shared.grads[w]!.subarray(start, start + length), weight.shape as number[]));
          }
        }
        if (grad) named[(weight.read() as Tfjs.Variable).name] = grad;
        offset += length;
      });
      applyGradients(tf, this.model.optimizer, named);
    });
  }

  /** Copies the trainable weights where the workers read them and gives them a new version number. */
  private publishWeights(): void {
    if (this.workers.length === 0) return;
    let offset = 0;
    for (const weight of this.model.trainableWeights) {
      const values = weight.read().dataSync() as Float32Array;
      this.shared.trainable.set(values, offset);
      offset += values.length;
    }
    this.weightsVersion += 1;
  }

  private request(worker: Worker, request: StepRequest | EvaluateRequest): Promise<Sums> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id });
    });
  }

  private settle(reply: ReplicaReply): void {
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if ('error' in reply) waiter.reject(new Error(`training worker: ${reply.error}`));
    else waiter.resolve(reply);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

/** Workers with a replica each (one per `shared.grads`), ready to compute; none left running if one fails. */
async function startReplicas(tf: Tf, model: Tfjs.LayersModel, split: { train: TensorSplit; val?: TensorSplit | undefined }, shared: { trainable: Float32Array; grads: Float32Array[] }): Promise<Worker[]> {
  const setup: Omit<ReplicaSetup, 'grads'> = {
    backend: tf.getBackend() as BackendName,
    topology: model.toJSON(undefined, false) as object,
    loss: namedLoss(model)!,
    metrics: model.metricsNames.slice(1),
    weights: model.getWeights().map((weight) => ({ shape: weight.shape, values: weight.dataSync() as Float32Array })),
    trainable: shared.trainable,
    train: await shareSplit(split.train),
    ...(split.val ? { val: await shareSplit(split.val) } : {}),
  };
  const workers = shared.grads.map((grads) => startWorker(WORKER_SCRIPT, { workerData: { ...setup, grads } satisfies ReplicaSetup }));
  try {
    await Promise.all(workers.map(ready));
    return workers;
  } catch (error) {
    await Promise.all(workers.map((worker) => worker.terminate()));
    throw error;
  }
}

function ready(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`a training worker exited while starting (code ${code})`)));
    worker.once('message', (message) => (message === 'ready' ? resolve() : reject(new Error(`training worker: ${String((message as { error?: string }).error ?? message)}`))));
  });
}

/** `sum[i] + next[i]` for each weight, disposing both; undefined stays undefined. */
function addInOrder(tf: Tf, sum: (Tfjs.Tensor | undefined)[], next: (Tfjs.Tensor | undefined)[]): (Tfjs.Tensor | undefined)[] {
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

function sharedFloats(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}
