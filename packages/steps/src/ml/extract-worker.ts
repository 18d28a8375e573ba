/**
 * A worker thread of extract-features: its own TensorFlow.js backend (wasm runs one thread per
 * process, so parallelism means one backend per worker) and its own copy of the frozen base.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type * as Tfjs from '@tensorflow/tfjs';
import { loadBackend, type BackendName } from '../runtime/backend.js';
import { toModelInput } from '../runtime/preprocessing.js';
import { loadBase, type LoadBaseOptions } from '../runtime/zoo.js';

export interface WorkerSetup {
  backend: BackendName;
  ref: string;
  options: Omit<LoadBaseOptions, 'signal' | 'log'>;
  size: number;
  batchSize: number;
}

export interface BatchRequest {
  id: number;
  images: Uint8Array;
  count: number;
}

const setup = workerData as WorkerSetup;
const port = parentPort!;
const { tf } = await loadBackend(setup.backend);
const base = await loadBase(tf, setup.ref, setup.options);
port.on('message', async (request: BatchRequest | 'close') => {
  if (request === 'close') {
    base.dispose();
    port.close();
    return;
  }
  try {
    const features = tf.tidy(() => {
      const pixels = tf.tensor4d(request.images, [request.count, setup.size, setup.size, 3], 'int32');
      return base.predict(toModelInput(tf, pixels, base.preprocessing), setup.batchSize) as Tfjs.Tensor;
    });
    const data = (await features.data()) as Float32Array;
    features.dispose();
    port.postMessage({ id: request.id, features: data }, [data.buffer as ArrayBuffer]);
  } catch (error) {
    port.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
  }
});
port.postMessage('ready');
