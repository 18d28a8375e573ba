import { Worker } from 'node:worker_threads';
import type { SplitBatch } from '../data/dataset.js';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BatchRequest, WorkerSetup } from './predict-worker.js';

type Reply = { id: number; output: Float32Array } | { id: number; error: string };

const WORKER_SCRIPT = new URL('./predict-worker.js', import.meta.url);

/**
 * Worker threads for running a model over image batches: $HEADSTART_WORKERS (the CLI's --workers),
 * else one per core; one when the work is too small to pay for starting them, or when running from
 * TypeScript sources (tests), where the worker script is not compiled.
 */
export function workerCount(images: number, batchSize: number): number {
  const requested = Number(process.env['HEADSTART_WORKERS'] ?? availableParallelism());
  if (!Number.isInteger(requested) || requested < 2 || !existsSync(fileURLToPath(WORKER_SCRIPT))) return 1;
  return images >= requested * batchSize * 4 ? requested : 1;
}

/**
 * A model run over `count` worker threads, each with its own backend and copy of the model. Batches go
 * out round-robin, at most two per worker in flight (memory stays bounded), and come back in input
 * order, so the output is the single-thread output.
 */
export class PredictionPool {
  private readonly pending = new Map<number, { resolve(features: Float32Array): void; reject(error: Error): void }>();
  private nextId = 0;

  private constructor(private readonly workers: Worker[]) {
    for (const worker of workers) {
      worker.on('message', (reply: Reply) => this.settle(reply));
      worker.on('error', (error) => this.failAll(error));
    }
  }

  static async start(count: number, setup: WorkerSetup): Promise<PredictionPool> {
    const workers = Array.from({ length: count }, () => new Worker(WORKER_SCRIPT, { workerData: setup }));
    await Promise.all(workers.map((worker) => new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('message', (message) => (message === 'ready' ? resolve() : reject(new Error(`worker said ${String(message)}`))));
    })));
    return new PredictionPool(workers);
  }

  /** The model's output for every batch, in order. */
  async *predict(batches: AsyncIterable<SplitBatch>, signal: AbortSignal): AsyncGenerator<Float32Array> {
    const inFlight: Promise<Float32Array>[] = [];
    for await (const batch of batches) {
      signal.throwIfAborted();
      inFlight.push(this.submit(batch));
      if (inFlight.length >= this.workers.length * 2) yield await inFlight.shift()!;
    }
    while (inFlight.length > 0) yield await inFlight.shift()!;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => {
      worker.postMessage('close');
      return worker.terminate();
    }));
  }

  private submit(batch: SplitBatch): Promise<Float32Array> {
    const id = this.nextId++;
    const worker = this.workers[id % this.workers.length]!;
    const request: BatchRequest = { id, images: batch.images, count: batch.count };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage(request);
    });
  }

  private settle(reply: Reply): void {
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if ('error' in reply) waiter.reject(new Error(reply.error));
    else waiter.resolve(reply.output);
  }

  private failAll(error: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}
