import { afterEach, describe, expect, it, vi } from 'vitest';
import { ThreadGroup } from '../../src/ml/threads/thread-group.js';
import { startedThreads as started } from './recorded-threads.js';

vi.mock('node:worker_threads', async (importOriginal) => (await import('./recorded-threads.js')).recordingWorkerThreads(importOriginal));

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
