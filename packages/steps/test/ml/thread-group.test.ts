import type * as WorkerThreads from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ThreadGroup } from '../../src/ml/threads/thread-group.js';

/** Every thread started, to check that none is left running. */
const started = vi.hoisted(() => [] as WorkerThreads.Worker[]);
vi.mock('node:worker_threads', async (importOriginal) => {
  const actual = await importOriginal<typeof WorkerThreads>();
  class RecordedWorker extends actual.Worker {
    constructor(...args: ConstructorParameters<typeof actual.Worker>) {
      super(...args);
      started.push(this);
    }
  }
  return { ...actual, Worker: RecordedWorker };
});

const ECHO = new URL('./fixtures/echo-thread.js', import.meta.url);
type Echo = ThreadGroup<{ value: number; exit?: boolean }, { value: number }>;

afterEach(() => {
  started.length = 0;
});

describe('ThreadGroup (the request/reply module of prediction and training threads)', () => {
  it('answers each request from the thread it went to, and stops every thread on close', async () => {
    const group: Echo = await ThreadGroup.start(ECHO, [{}, {}], 'test');
    expect(await Promise.all([group.request(0, { value: 1 }), group.request(1, { value: 5 })])).toEqual([{ value: 2 }, { value: 10 }]);
    await group.close();
    expect(started.map((thread) => thread.threadId)).toEqual([-1, -1]);
  });

  it('leaves no thread running when another fails to set up', async () => {
    await expect(ThreadGroup.start(ECHO, [{}, { fail: true }], 'test')).rejects.toThrow('test thread: could not set up');
    expect(started).toHaveLength(2);
    expect(started.map((thread) => thread.threadId)).toEqual([-1, -1]);
  });

  it('fails a request in flight, and every later one, when a thread exits', async () => {
    const group: Echo = await ThreadGroup.start(ECHO, [{}, {}], 'test');
    await expect(group.request(0, { value: 1, exit: true })).rejects.toThrow('a test thread exited (code 3)');
    await expect(group.request(1, { value: 1 })).rejects.toThrow('a test thread exited (code 3)');
    await group.close();
    expect(started.map((thread) => thread.threadId)).toEqual([-1, -1]);
  });
});
