import type * as WorkerThreads from 'node:worker_threads';

/** Every thread the code under test started, to check that none is left running (see recordingWorkerThreads). */
export const startedThreads: WorkerThreads.Worker[] = [];

/**
 * node:worker_threads with a Worker that records itself in `startedThreads`. A test file mocks the module with
 * `vi.mock('node:worker_threads', async (original) => (await import('./recorded-threads.js')).recordingWorkerThreads(original))`:
 * imported inside the (hoisted) factory, this module is the same instance the test imports `startedThreads` from.
 */
export async function recordingWorkerThreads(importOriginal: () => Promise<unknown>): Promise<typeof WorkerThreads> {
  const actual = (await importOriginal()) as typeof WorkerThreads;
  class RecordedWorker extends actual.Worker {
    constructor(...args: ConstructorParameters<typeof actual.Worker>) {
      super(...args);
      startedThreads.push(this);
    }
  }
  return { ...actual, Worker: RecordedWorker };
}
