import type { SplitBatch } from '../data/dataset.js';
import type { BackendName, Tf } from '../runtime/backend.js';
import { predictBatch, type BatchOutput } from './batch-prediction.js';
import { loadPredictor } from './model-artifact.js';
import { PredictionPool } from './prediction-pool.js';

export interface ModelOutputsOptions {
  backend: BackendName;
  modelDir: string;
  /** The batches' image size (square, RGB). */
  size: number;
  batchSize: number;
  /** Prediction threads; with one, the model runs here. */
  threads: number;
  /** Test-time augmentation: also the output on each batch mirrored left to right. */
  flip?: boolean;
  signal: AbortSignal;
}

/**
 * A model artifact's output for every batch, in input order: on a pool of prediction threads, or
 * here, where the model is loaded only when no other thread does the predicting. Either way the bytes are the same.
 */
export async function* modelOutputs(tf: Tf, batches: AsyncIterable<SplitBatch>, o: ModelOutputsOptions): AsyncGenerator<BatchOutput> {
  if (o.threads <= 1) {
    yield* predictHere(tf, batches, o);
    return;
  }
  const pool = await PredictionPool.start(o.threads, { backend: o.backend, model: { kind: 'artifact', dir: o.modelDir }, size: o.size, batchSize: o.batchSize, ...(o.flip ? { flip: true } : {}) });
  try {
    yield* pool.predictBatches(batches, o.signal);
  } finally {
    await pool.close();
  }
}

async function* predictHere(tf: Tf, batches: AsyncIterable<SplitBatch>, o: ModelOutputsOptions): AsyncGenerator<BatchOutput> {
  const predictor = await loadPredictor(tf, o.modelDir);
  try {
    for await (const batch of batches) {
      o.signal.throwIfAborted();
      yield await predictBatch(tf, predictor.predict, batch, { size: o.size, preprocessing: predictor.metadata.preprocessing, flip: o.flip ?? false });
    }
  } finally {
    predictor.dispose();
  }
}
