import os from 'node:os';

/** In-flight image operations: sharp's work runs on libuv's pool (4 threads), so a few more than the cores. */
export const IMAGE_CONCURRENCY = Math.max(2, Math.min(8, os.availableParallelism() * 2));

/** Maps with at most `concurrency` calls in flight; results keep the items' order. */
export async function mapBounded<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (error) {
        next = items.length; // the others stop after their current item
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

export interface BatchOptions<R> {
  batchSize: number;
  concurrency?: number;
  /** Checked between batches. */
  signal?: AbortSignal;
  /** Called with each batch's results in order, before the next batch starts. */
  onBatch?: (results: R[], done: number) => Promise<void> | void;
}

/** Runs `fn` over the items a batch at a time (bounded concurrency inside a batch), so memory stays bounded. */
export async function forEachBatch<T, R>(items: readonly T[], options: BatchOptions<R>, fn: (item: T, index: number) => Promise<R>): Promise<void> {
  for (let start = 0; start < items.length; start += options.batchSize) {
    options.signal?.throwIfAborted();
    const batch = items.slice(start, start + options.batchSize);
    const results = await mapBounded(batch, options.concurrency ?? IMAGE_CONCURRENCY, (item, i) => fn(item, start + i));
    await options.onBatch?.(results, start + batch.length);
  }
  options.signal?.throwIfAborted();
}
