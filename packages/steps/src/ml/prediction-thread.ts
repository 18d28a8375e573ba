/**
 * A prediction thread (prediction-pool.ts) runs a model over image batches: its own TensorFlow.js
 * backend (wasm runs one thread per process, so parallelism means one backend per thread) and its own
 * copy of the model.
 */
import { workerData } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import { loadBackend, type BackendName, type Tf } from '../runtime/backend.js';
import type { Preprocessing } from '../runtime/preprocessing.js';
import { loadFrozenBase, type LoadBaseOptions } from '../runtime/zoo.js';
import { predictBatch, type BatchOutput } from './batch-prediction.js';
import { loadModelArtifact, loadPredictor } from './model-artifact.js';
import { splitAtFirstTrainable } from './model-graph.js';
import { serveRequests } from './threads/thread-group.js';

/**
 * Which model a prediction thread loads: a base from the zoo (extract-features), a model artifact
 * (evaluate), or the frozen part of one, below its first trainable layer (fine-tune's cached
 * boundary activations).
 */
export type PredictedModel = { kind: 'base'; ref: string; options: Omit<LoadBaseOptions, 'signal' | 'log'> } | { kind: 'artifact'; dir: string; part?: 'frozen' };

export interface PredictionSetup {
  backend: BackendName;
  model: PredictedModel;
  size: number;
  batchSize: number;
  /** Also predict each batch mirrored left to right (test-time augmentation). */
  flip?: boolean;
}

export interface BatchRequest {
  images: Uint8Array;
  count: number;
}

interface LoadedModel {
  predict(input: Tfjs.Tensor): Tfjs.Tensor;
  preprocessing: Preprocessing;
}

async function loadPredictedModel(tf: Tf, setup: PredictionSetup): Promise<LoadedModel> {
  if (setup.model.kind === 'base') {
    const base = await loadFrozenBase(tf, setup.model.ref, setup.model.options);
    return { predict: (x) => base.predict(x, setup.batchSize), preprocessing: base.preprocessing };
  }
  if (setup.model.part !== 'frozen') {
    const predictor = await loadPredictor(tf, setup.model.dir, setup.batchSize);
    return { predict: predictor.predict, preprocessing: predictor.metadata.preprocessing };
  }
  const { model, metadata } = await loadModelArtifact(tf, setup.model.dir);
  const predicted = splitAtFirstTrainable(tf, model)?.lower;
  if (!predicted) throw new Error('the model has no frozen part that one tensor separates from the trainable one');
  return { predict: (x) => predicted.predict(x, { batchSize: setup.batchSize }) as Tfjs.Tensor, preprocessing: metadata.preprocessing };
}

await serveRequests<BatchRequest, BatchOutput>(
  async () => {
    const setup = workerData as PredictionSetup;
    const { tf } = await loadBackend(setup.backend);
    const model = await loadPredictedModel(tf, setup);
    return (request) => predictBatch(tf, model.predict, request, { size: setup.size, preprocessing: model.preprocessing, flip: setup.flip ?? false });
  },
  (result) => [result.output, result.flipped].flatMap((data) => (data ? [data.buffer as ArrayBuffer] : [])),
);
