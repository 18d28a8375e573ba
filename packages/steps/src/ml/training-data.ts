import type * as Tfjs from '@tensorflow/tfjs';
import { openSplit, type PreprocessedSplit, type Split } from '../data/dataset.js';
import type { ModelMetadata } from './model-artifact.js';
import { PredictionPool, predictionThreads } from './prediction-pool.js';
import { oneHot, type TensorSplit } from './training.js';
import type { BackendName, Tf } from '../runtime/backend.js';
import { checkMemory, tensorBytes } from '../runtime/memory.js';
import { toModelInput } from '../runtime/preprocessing.js';

/** Images per batch when computing the frozen part's activations (or scaling the images). */
const INPUT_BATCH = 64;

export interface TrainingInputs {
  tf: Tf;
  datasetDir: string;
  modelDir: string;
  metadata: ModelMetadata;
  /** The frozen part below the boundary, when the model was split. */
  lower: Tfjs.LayersModel | undefined;
  backend: BackendName;
  budget: number;
  /** The user's thread count (`ctx.settings.threads`). */
  requestedThreads: number | undefined;
  signal: AbortSignal;
  /** Load the train split alone (its val split would go unused). */
  trainOnly?: boolean;
}

/**
 * The train and val splits (only train with `trainOnly`) as tensors: the lower part's activations when the model was split (computed
 * once here, instead of once per epoch, on prediction threads when there are enough images), the scaled
 * images otherwise.
 */
export async function loadTrainingData(o: TrainingInputs): Promise<{ train: TensorSplit; val?: TensorSplit; threads: number }> {
  const train = await openSplit(o.datasetDir, 'train');
  const val = o.trainOnly ? undefined : await openSplit(o.datasetDir, 'val').catch(() => undefined);
  const threads = o.lower ? predictionThreads(train.count + (val?.count ?? 0), INPUT_BATCH, o.requestedThreads) : 1;
  const pool = threads > 1 ? await PredictionPool.start(threads, { backend: o.backend, model: { kind: 'artifact', dir: o.modelDir, part: 'frozen' }, size: train.size, batchSize: INPUT_BATCH }) : undefined;
  try {
    const trainTensors = await splitTensors(o, 'train', train, pool);
    return val ? { train: trainTensors, val: await splitTensors(o, 'val', val, pool), threads } : { train: trainTensors, threads };
  } finally {
    await pool?.close();
  }
}

async function splitTensors(o: TrainingInputs, name: Split, source: PreprocessedSplit, pool: PredictionPool | undefined): Promise<TensorSplit> {
  const { tf, lower, metadata } = o;
  const rowShape = lower ? (lower.outputs[0]!.shape.slice(1) as number[]) : [metadata.preprocessing.inputSize, metadata.preprocessing.inputSize, metadata.preprocessing.channels];
  checkMemory(tf, o.budget, tensorBytes([source.count, ...rowShape]) * 3, `the ${name} split's ${lower ? 'activations' : 'images'}`);
  const parts: Tfjs.Tensor[] = [];
  if (pool) {
    const rowSize = rowShape.reduce((a, b) => a * b, 1);
    for await (const output of pool.predict(source.batches(INPUT_BATCH), o.signal)) parts.push(tf.tensor(output, [output.length / rowSize, ...rowShape]));
  } else {
    for await (const batch of source.batches(INPUT_BATCH)) {
      o.signal.throwIfAborted();
      parts.push(tf.tidy(() => {
        const images = toModelInput(tf, tf.tensor4d(batch.images, [batch.count, source.size, source.size, 3], 'int32'), metadata.preprocessing);
        return lower ? (lower.predict(images, { batchSize: INPUT_BATCH }) as Tfjs.Tensor) : images;
      }));
    }
  }
  const x = tf.concat(parts);
  tf.dispose(parts);
  const labels = await source.readLabels();
  const y = metadata.binary ? tf.tensor2d(Float32Array.from(labels), [labels.length, 1]) : oneHot(tf, labels, metadata.classes.length);
  return { x, y, count: labels.length };
}
