import type { SplitBatch } from '../data/dataset.js';
import type { BatchOutput } from './batch-prediction.js';
import type { BatchRequest, PredictionSetup } from './prediction-thread.js';
import { threadsFor } from './threads/thread-count.js';
import { ThreadGroup } from './threads/thread-group.js';

const PREDICTION_SCRIPT = new URL('./prediction-thread.js', import.meta.url);

/**
 * Threads for running a model over `images` images, `batchSize` at a time (`threadsFor` with the user's
 * `requested` count). From TypeScript sources (unit tests) too: startThread runs the thread's `.ts` source.
 */
export function predictionThreads(images: number, batchSize: number, requested: number | undefined): number {
  return threadsFor(images, batchSize, requested);
}

/**
 * A model run over `count` threads, each with its own backend and copy of the model. Batches go out
 * round-robin, at most two per thread in flight (memory stays bounded), and come back in input
 * order, so the output is the single-thread output.
 */
export class PredictionPool {
  private nextBatch = 0;

  private constructor(private readonly threads: ThreadGroup<BatchRequest, BatchOutput>) {}

  static async start(count: number, setup: PredictionSetup): Promise<PredictionPool> {
    return new PredictionPool(await ThreadGroup.start(PREDICTION_SCRIPT, Array.from({ length: count }, () => setup), 'prediction'));
  }

  /** The model's output for every batch, in order. */
  async *predict(batches: AsyncIterable<SplitBatch>, signal: AbortSignal): AsyncGenerator<Float32Array> {
    for await (const { output } of this.predictBatches(batches, signal)) yield output;
  }

  /** The model's output for every batch, in order, with the output on the mirrored batch when the setup asked for `flip`. */
  async *predictBatches(batches: AsyncIterable<SplitBatch>, signal: AbortSignal): AsyncGenerator<BatchOutput> {
    const inFlight: Promise<BatchOutput>[] = [];
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

  private submit(batch: SplitBatch): Promise<BatchOutput> {
    const thread = this.nextBatch++ % this.threads.size;
    return this.threads.request(thread, { images: batch.images, count: batch.count });
  }
}
