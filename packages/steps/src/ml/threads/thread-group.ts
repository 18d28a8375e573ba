/**
 * Requests and replies between the main thread and the threads it starts, both sides. A thread script calls
 * `serveRequests`: it posts 'ready' once set up (or `{ error }`), then answers each `{ id, ...request }`
 * with `{ id, ...result }` or `{ id, error }`. The main thread holds the threads in a `ThreadGroup`.
 */
import { parentPort, type TransferListItem, type Worker } from 'node:worker_threads';
import { startThread } from './start-thread.js';

type Reply<Result> = ({ id: number } & Result) | { id: number; error: string };
type SetupFailure = { error: string };

interface Waiter<Result> {
  resolve(result: Result): void;
  reject(error: Error): void;
}

/**
 * Threads running one script, each answering requests. A thread that fails or exits fails every
 * request in flight and every later one; `close` stops them all.
 */
export class ThreadGroup<Request extends object, Result extends object> {
  private readonly pending = new Map<number, Waiter<Result>>();
  private nextId = 0;
  /** Set once a thread failed or the group was closed: no request can be answered after that. */
  private failure: Error | undefined;

  private constructor(
    private readonly threads: Worker[],
    private readonly what: string,
  ) {
    for (const thread of threads) {
      thread.on('message', (reply: Reply<Result>) => this.settle(reply));
      thread.on('error', (error) => this.fail(error));
      thread.on('exit', (code) => this.fail(new Error(`a ${what} thread exited (code ${code})`)));
    }
  }

  /**
   * Starts one thread per item of `setups` (its `workerData`) running `script`, and waits until every
   * one is ready. If one cannot start, none is left running. `what` names the threads in errors.
   */
  static async start<Request extends object, Result extends object>(script: URL, setups: readonly unknown[], what: string): Promise<ThreadGroup<Request, Result>> {
    const threads: Worker[] = [];
    try {
      for (const setup of setups) threads.push(startThread(script, { workerData: setup }));
      await Promise.all(threads.map((thread) => ready(thread, what)));
    } catch (error) {
      await Promise.all(threads.map((thread) => thread.terminate()));
      throw error;
    }
    return new ThreadGroup<Request, Result>(threads, what);
  }

  get size(): number {
    return this.threads.length;
  }

  /** Sends `request` to thread `index`; resolves with its result. */
  request(index: number, request: Request): Promise<Result> {
    if (this.failure) return Promise.reject(this.failure);
    const thread = this.threads[index];
    if (!thread) return Promise.reject(new Error(`no ${this.what} thread ${index}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      thread.postMessage({ ...request, id });
    });
  }

  /** Stops every thread; requests in flight fail. */
  async close(): Promise<void> {
    for (const thread of this.threads) thread.removeAllListeners('exit');
    this.fail(new Error(`the ${this.what} threads were closed`));
    await Promise.all(this.threads.map((thread) => thread.terminate()));
  }

  private settle(reply: Reply<Result>): void {
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if ('error' in reply) waiter.reject(new Error(`${this.what} thread: ${reply.error}`));
    else waiter.resolve(withoutId(reply));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

function ready(thread: Worker, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    thread.once('error', reject);
    thread.once('exit', (code) => reject(new Error(`a ${what} thread exited while starting (code ${code})`)));
    thread.once('message', (message: 'ready' | SetupFailure) => (message === 'ready' ? resolve() : reject(new Error(`${what} thread: ${message.error}`))));
  });
}

function withoutId<Result extends object>(reply: { id: number } & Result): Result {
  const result: Partial<{ id: number }> & Result = { ...reply };
  delete result.id;
  return result;
}

/**
 * Runs in a thread: `setUp` prepares what the thread needs and returns the request handler; then
 * every request is answered with the handler's result (its `transfer` list moved, not copied) or
 * the message of what it threw.
 */
export async function serveRequests<Request extends object, Result extends object>(
  setUp: () => Promise<(request: Request) => Result | Promise<Result>>,
  transfer: (result: Result) => TransferListItem[] = () => [],
): Promise<void> {
  const port = parentPort!;
  let handle: (request: Request) => Result | Promise<Result>;
  try {
    handle = await setUp();
  } catch (error) {
    port.postMessage({ error: messageOf(error) } satisfies SetupFailure);
    return;
  }
  const reply = async ({ id, ...request }: { id: number } & Request): Promise<void> => {
    try {
      const result = await handle(request as unknown as Request);
      port.postMessage({ ...result, id }, transfer(result));
    } catch (error) {
      port.postMessage({ id, error: messageOf(error) });
    }
  };
  port.on('message', (message: { id: number } & Request) => void reply(message));
  port.postMessage('ready');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
