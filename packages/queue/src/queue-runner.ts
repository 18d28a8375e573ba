import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { HeadstartError, type Cache, type RunRecord, type Stage, type StageHooks, type StageJob, type StageRunner } from '@headstart/core';
import type { S3RemoteCache } from '@headstart/remote';
import type { QueuedStage, StageResult } from './job-data.js';
import { messageOf, redisConnection } from './redis.js';
import { QUEUE_NAME } from './settings.js';

const JOB_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: { count: 1_000 }, removeOnFail: { count: 1_000 } };

/**
 * The coordinator's stage runner: each stage the executor decided must run becomes a job (id: its key,
 * so a duplicate is dropped); the result comes back through the remote cache into the local store.
 */
export class QueueStageRunner implements StageRunner {
  readonly runsElsewhere = true;
  private readonly connection: Redis;
  private readonly eventsConnection: Redis;
  private readonly queue: Queue<QueuedStage, StageResult>;
  private readonly events: QueueEvents;

  constructor(redisUrl: string, private readonly remote: S3RemoteCache, private readonly cache: Cache) {
    this.connection = redisConnection(redisUrl);
    this.queue = new Queue(QUEUE_NAME, { connection: this.connection });
    this.eventsConnection = redisConnection(redisUrl);
    this.events = new QueueEvents(QUEUE_NAME, { connection: this.eventsConnection });
  }

  async ready(): Promise<void> {
    await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]);
  }

  async run(job: StageJob, _stage: Stage, hooks: StageHooks): Promise<RunRecord> {
    const queued = await this.enqueue(job);
    const result = await this.waitFor(queued, hooks.signal);
    // The worker's Failure as it was made there: a user error on a worker is one here too.
    if (!result.ok) throw new HeadstartError(result.failure);
    hooks.log('info', `${result.ran ? 'ran' : 'found'} on worker ${result.worker}`);
    return this.pullResult(job);
  }

  async close(): Promise<void> {
    await this.events.close();
    await this.queue.close();
    this.connection.disconnect();
    this.eventsConnection.disconnect();
  }

  /** A finished job left under the key by an earlier run would answer at once: it goes first. */
  private async enqueue(job: StageJob): Promise<Job<QueuedStage, StageResult>> {
    const previous = await this.queue.getJob(job.key);
    if (previous && ((await previous.isCompleted()) || (await previous.isFailed()))) await previous.remove();
    return this.queue.add(job.stage, { job }, { ...JOB_OPTIONS, jobId: job.key });
  }

  /** Until a worker finishes it; on Ctrl-C the job is removed if no worker has taken it yet. */
  private async waitFor(queued: Job<QueuedStage, StageResult>, signal: AbortSignal): Promise<StageResult> {
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => {
        void this.removeIfWaiting(queued).finally(() => reject(Object.assign(new Error('interrupted'), { name: 'AbortError' })));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([queued.waitUntilFinished(this.events), aborted]);
    } catch (error) {
      if (error instanceof Error && error.name === 'AbortError') throw error;
      throw new Error(messageOf(error));
    } finally {
      signal.removeEventListener('abort', onAbort!);
    }
  }

  private async removeIfWaiting(queued: Job<QueuedStage, StageResult>): Promise<void> {
    const state = await queued.getState().catch(() => 'unknown');
    if (state === 'waiting' || state === 'delayed' || state === 'prioritized') await queued.remove().catch(() => undefined);
  }

  private async pullResult(job: StageJob): Promise<RunRecord> {
    const record = await this.remote.lookup(job.key);
    if (!record || !(await this.remote.pull(record, this.cache))) throw new Error(`the worker's result for ${job.key.slice(0, 12)} is not in the remote cache`);
    return record;
  }
}
