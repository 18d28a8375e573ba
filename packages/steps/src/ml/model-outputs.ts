import type * as Tfjs from '@tensorflow/tfjs';
import type { SplitBatch } from '../data/dataset.js';
import type { BackendName, Tf } from '../runtime/backend.js';
import { toModelInput } from '../runtime/preprocessing.js';
import { loadModelArtifact } from './model-artifact.js';
import { PredictionPool } from './prediction-pool.js';

export interface ModelOutputsOptions {
  backend: BackendName;
  modelDir: string;
  /** The batches' image size (square, RGB). */
  size: number;
  batchSize: number;
  /** Prediction threads; with one, the model runs here. */
  threads: number;
  signal: AbortSignal;
}

/**
 * A model artifact's output for every batch, in input order: on a pool of prediction threads, or
 * here, where the model is loaded only when no other thread does the predicting. Either way the bytes are the same.
 */
export async function* modelOutputs(tf: Tf, batches: AsyncIterable<SplitBatch>, o: ModelOutputsOptions): AsyncGenerator<Float32Array> {
  if (o.threads <= 1) {
    yield* predictHere(tf, batches, o);
    return;
  }
  const pool = await PredictionPool.start(o.threads, { backend: o.backend, model: { kind: 'artifact', dir: o.modelDir }, size: o.size, batchSize: o.batchSize });
  try {
    yield* pool.predict(batches, o.signal);
  } finally {
    await pool.close();
  }
}

async function* predictHere(tf: Tf, batches: AsyncIterable<SplitBatch>, o: ModelOutputsOptions): AsyncGenerator<Float32Array> {
  const { model, metadata } = await loadModelArtifact(tf, o.modelDir);
  try {
    for await (const batch of batches) {
      o.signal.throwIfAborted();
      const output = tf.tidy(() => {
        const pixels = tf.tensor4d(batch.images, [batch.count, o.size, o.size, 3], 'int32');
        return model.predict(toModelInput(tf, pixels, metadata.preprocessing)) as Tfjs.Tensor;
      });
      const data = (await output.data()) as Float32Array;
      output.dispose();
      yield data;
    }
  } finally {
    model.dispose();
  }
}
