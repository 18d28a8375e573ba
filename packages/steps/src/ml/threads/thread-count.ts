import { availableParallelism } from 'node:os';

/**
 * Threads the user asked for: $HEADSTART_WORKERS (the CLI's --workers), else one per core. The one
 * place ml/ reads that setting.
 */
export function requestedThreads(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const requested = Number(env['HEADSTART_WORKERS'] ?? availableParallelism());
  return Number.isInteger(requested) && requested >= 2 ? requested : 1;
}

/**
 * Threads for `items` processed `batchSize` at a time, the calling thread counting as one: the
 * requested number when each thread gets four batches or more, else one (starting threads and
 * loading a model in each would not pay).
 */
export function threadsFor(items: number, batchSize: number, requested: number = requestedThreads()): number {
  return requested > 1 && items >= requested * batchSize * 4 ? requested : 1;
}
