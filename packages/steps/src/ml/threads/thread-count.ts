import { availableParallelism } from 'node:os';

/**
 * Threads the user asked for: `requested` (a step's `ctx.settings.threads`: --workers, else
 * $HEADSTART_WORKERS), else one per core. Anything but a whole number of 2 or more is one.
 */
export function requestedThreads(requested: number | undefined): number {
  const threads = requested ?? availableParallelism();
  return Number.isInteger(threads) && threads >= 2 ? threads : 1;
}

/**
 * Threads for `items` processed `batchSize` at a time, the calling thread counting as one: the
 * requested number when each thread gets four batches or more, else one (starting threads and
 * loading a model in each would not pay).
 */
export function threadsFor(items: number, batchSize: number, requested: number | undefined): number {
  const threads = requestedThreads(requested);
  return threads > 1 && items >= threads * batchSize * 4 ? threads : 1;
}
