/**
 * A replica thread of data-parallel training (trainer.ts): its own TensorFlow.js backend and a
 * replica of the model, whose trainable weights it reloads from shared memory whenever the main thread
 * published new ones. It computes the losses and gradients of its slices of a batch, or the losses and
 * correct predictions of its chunks of the validation split; the main thread applies the update.
 */
import { workerData } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import { loadBackend, type Tf } from '../../runtime/backend.js';
import { freezeBatchNorm } from '../../runtime/batch-norm.js';
import { serveRequests } from '../threads/thread-group.js';
import { gradientBlock, type EvaluateRequest, type ReplicaRequest, type ReplicaSetup, type SharedSplit, type StepRequest, type Sums } from './protocol.js';
import { shardDropout } from './sharded-dropout.js';
import { evaluateChunks, sizeOf, sliceBounds, sliceGradients, smoothLabels } from './slices.js';

/**
 * The replica: the same layers, wiring and weights as the main thread's model. Every BatchNormalization
 * layer runs in inference mode: data-parallel training is used only when the main thread's do.
 */
async function buildReplica(tf: Tf, setup: ReplicaSetup): Promise<Tfjs.LayersModel> {
  const model = (await tf.models.modelFromJSON({ modelTopology: setup.topology } as Tfjs.io.ModelJSON)) as Tfjs.LayersModel;
  const weights = setup.weights.map((weight) => tf.tensor(weight.values, weight.shape));
  model.setWeights(weights);
  tf.dispose(weights);
  model.compile({ optimizer: 'sgd', loss: setup.loss, metrics: setup.metrics });
  smoothLabels(tf, model, setup.labelSmoothing);
  freezeBatchNorm(model, 'always');
  shardDropout(tf, model);
  const trainableSize = model.trainableWeights.reduce((n, weight) => n + sizeOf(weight.shape), 0);
  if (trainableSize !== setup.trainable.length) throw new Error(`the replica has ${trainableSize} trainable values, the model ${setup.trainable.length}`);
  return model;
}

/** The split's rows as x and y tensors: x's row shape is the replica's input shape. */
function rowsOf(tf: Tf, model: Tfjs.LayersModel, split: SharedSplit, rows: ArrayLike<number>): [Tfjs.Tensor, Tfjs.Tensor] {
  const rowShape = model.inputs[0]!.shape.slice(1) as number[];
  const [xWidth, yWidth] = [split.x.length / split.count, split.y.length / split.count];
  const [x, y] = [new Float32Array(rows.length * xWidth), new Float32Array(rows.length * yWidth)];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    x.set(split.x.subarray(row * xWidth, (row + 1) * xWidth), i * xWidth);
    y.set(split.y.subarray(row * yWidth, (row + 1) * yWidth), i * yWidth);
  }
  return [tf.tensor(x, [rows.length, ...rowShape]), tf.tensor(y, [rows.length, yWidth])];
}

class Replica {
  private weightsVersion = 0;

  constructor(
    private readonly tf: Tf,
    private readonly model: Tfjs.LayersModel,
    private readonly setup: ReplicaSetup,
  ) {}

  handle(request: ReplicaRequest): Sums {
    this.loadWeights(request.weights);
    return request.kind === 'step' ? this.step(request) : this.evaluate(request);
  }

  /** Each of slices [first, end) of the batch: its gradients into its block of `grads`, its sums into the reply. */
  private step(request: StepRequest): Sums {
    const sums: Sums = { loss: [], correct: [] };
    const slices = sliceBounds(request.rows.length).slice(request.first, request.end);
    for (const [block, [start, end]] of slices.entries()) {
      const [x, y] = rowsOf(this.tf, this.model, this.setup.train, request.rows.subarray(start, end));
      const slice = sliceGradients(this.tf, this.model, x, y, { offset: start, batchSize: request.rows.length }, this.setup.classWeights);
      this.tf.dispose([x, y]);
      this.writeGradients(slice.grads, gradientBlock(block, this.setup.trainable.length));
      sums.loss.push(slice.loss);
      sums.correct.push(slice.correct);
    }
    return sums;
  }

  /** Gradients one after another from `offset`, zeros for a weight without one; disposes them. */
  private writeGradients(grads: (Tfjs.Tensor | undefined)[], offset: number): void {
    this.model.trainableWeights.forEach((weight, i) => {
      const size = sizeOf(weight.shape);
      const grad = grads[i];
      if (grad) this.setup.grads.set(grad.dataSync() as Float32Array, offset);
      else this.setup.grads.fill(0, offset, offset + size);
      grad?.dispose();
      offset += size;
    });
  }

  private evaluate(request: EvaluateRequest): Sums {
    const val = this.setup.val;
    if (!val) throw new Error('no validation split was shared');
    const start = request.first * request.chunkRows;
    const end = Math.min(request.end * request.chunkRows, val.count);
    const [x, y] = rowsOf(this.tf, this.model, val, Array.from({ length: end - start }, (_, i) => start + i));
    try {
      return evaluateChunks(this.tf, this.model, x, y, request.chunkRows);
    } finally {
      this.tf.dispose([x, y]);
    }
  }

  /** Takes the trainable weights from shared memory unless this version is already loaded. */
  private loadWeights(version: number): void {
    if (version === this.weightsVersion) return;
    let offset = 0;
    for (const weight of this.model.trainableWeights) {
      const size = sizeOf(weight.shape);
      const values = this.tf.tensor(this.setup.trainable.subarray(offset, offset + size), weight.shape as number[]);
      (weight.read() as Tfjs.Variable).assign(values);
      values.dispose();
      offset += size;
    }
    this.weightsVersion = version;
  }
}

await serveRequests<ReplicaRequest, Sums>(async () => {
  const setup = workerData as ReplicaSetup;
  const { tf } = await loadBackend(setup.backend);
  const replica = new Replica(tf, await buildReplica(tf, setup), setup);
  return (request) => replica.handle(request);
});
