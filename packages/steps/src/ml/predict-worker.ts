/**
 * A worker thread that runs a model over image batches: its own TensorFlow.js backend (wasm runs one
 * thread per process, so parallelism means one backend per worker) and its own copy of the model.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import { loadBackend, type BackendName, type Tf } from '../runtime/backend.js';
import { toModelInput, type Preprocessing } from '../runtime/preprocessing.js';
import { loadBase, type LoadBaseOptions } from '../runtime/zoo.js';
import { loadModelArtifact } from './model-artifact.js';
import { splitAtFirstTrainable } from './model-graph.js';

/**
 * Which model a worker loads: a base from the zoo (extract-features), a model artifact (evaluate), or
 * the frozen part of one, below its first trainable layer (fine-tune's cached boundary activations).
 */
export type WorkerModel = { kind: 'base'; ref: string; options: Omit<LoadBaseOptions, 'signal' | 'log'> } | { kind: 'artifact'; dir: string; part?: 'frozen' };

export interface WorkerSetup {
  backend: BackendName;
  model: WorkerModel;
  size: number;
  batchSize: number;
}

export interface BatchRequest {
  id: number;
  images: Uint8Array;
  count: number;
}

interface LoadedModel {
  predict(input: Tfjs.Tensor): Tfjs.Tensor;
  preprocessing: Preprocessing;
  dispose(): void;
}

async function loadWorkerModel(tf: Tf, setup: WorkerSetup): Promise<LoadedModel> {
  if (setup.model.kind === 'base') {
    const base = await loadBase(tf, setup.model.ref, setup.model.options);
    return { predict: (x) => base.predict(x, setup.batchSize), preprocessing: base.preprocessing, dispose: () => base.dispose() };
  }
  const { model, metadata } = await loadModelArtifact(tf, setup.model.dir);
  const predicted = setup.model.part === 'frozen' ? splitAtFirstTrainable(tf, model)?.lower : model;
  if (!predicted) throw new Error('the model has no frozen part that one tensor separates from the trainable one');
  return { predict: (x) => predicted.predict(x, { batchSize: setup.batchSize }) as Tfjs.Tensor, preprocessing: metadata.preprocessing, dispose: () => model.dispose() };
}

const setup = workerData as WorkerSetup;
const port = parentPort!;
const { tf } = await loadBackend(setup.backend);
const model = await loadWorkerModel(tf, setup);
port.on('message', async (request: BatchRequest | 'close') => {
  if (request === 'close') {
    model.dispose();
    port.close();
    return;
  }
  try {
    const output = tf.tidy(() => {
      const pixels = tf.tensor4d(request.images, [request.count, setup.size, setup.size, 3], 'int32');
      return model.predict(toModelInput(tf, pixels, model.preprocessing));
    });
    const data = (await output.data()) as Float32Array;
    output.dispose();
    port.postMessage({ id: request.id, output: data }, [data.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
port.postMessage('ready');
