import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SplitBatch } from '../data/dataset.js';
import type { BatchRequest, PredictionSetup } from './prediction-thread.js';
import { threadsFor } from './threads/thread-count.js';
import { ThreadGroup } from './threads/thread-group.js';

const PREDICTION_SCRIPT = new URL('./prediction-thread.js', import.meta.url);

/**
 * Threads for running a model over `images` images, `batchSize` at a time (`threadsFor`); one when
 * running from TypeScript sources (unit tests), where the thread script is not compiled.
 */
export function predictionThreads(images: number, batchSize: number): number {
  return existsSync(fileURLToPath(PREDICTION_SCRIPT)) ? threadsFor(images, batchSize) : 1;
}

/**
 * A model run over `count` threads, each with its own backend and copy of the model. Batches go out
 * round-robin, at most two per thread in flight (memory stays bounded), and come back in input
 * order, so the output is the single-thread output.
 */
export class PredictionPool {
  private nextBatch = 0;

  private constructor(private readonly threads: ThreadGroup<BatchRequest, { output: Float32Array }>) {}

  static async start(count: number, setup: PredictionSetup): Promise<PredictionPool> {
    return new PredictionPool(await ThreadGroup.start(PREDICTION_SCRIPT, Array.from({ length: count }, () => setup), 'prediction'));
  }

  /** The model's output for every batch, in order. */
  async *predict(batches: AsyncIterable<SplitBatch>, signal: AbortSignal): AsyncGenerator<Float32Array> {
    const inFlight: Promise<Float32Array>[] = [];
    for await (const batch of batches) {
      signal.throwIfAborted();
      inFlight.push(this.submit(batch));
      if (inFlight.length >= this.threads.size * 2) yield await inFlight.shift()!;
    }
    while (inFlight.length > 0) yield await inFlight.shift()!;
  }

  close(): Promise<void> {
    return this.threads.close();
  }

  private async submit(batch: SplitBatch): Promise<Float32Array> {
    const thread = this.nextBatch++ % this.threads.size;
    return (await this.threads.request(thread, { images: batch.images, count: batch.count })).output;
  }
}
