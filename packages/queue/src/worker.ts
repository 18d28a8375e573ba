import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { Worker, type Job } from 'bullmq';
import type { Cache, Failure, StepSettings } from '@headstart/core';
import type { S3RemoteCache } from '@headstart/remote';
import type { QueuedStage, StageResult } from './job-data.js';
import { pullInputs } from './pull-inputs.js';
import { redisConnection } from './redis.js';
import { runInChild, StageFailed } from './run-in-child.js';
import { lockSettingsFrom, QUEUE_NAME } from './settings.js';

export interface WorkerOptions {
  redisUrl: string;
  remote: S3RemoteCache;
  cache: Cache;
  concurrency: number;
  name?: string;
  /** This machine's checkout of the project, in place of the coordinator's pipeline directory. */
  workdir?: string;
  /** The steps' `ctx.settings` on this machine (its ML backend and thread count). */
  settings?: StepSettings;
  /** One line per event (a stage taken, its output, its end). */
  print(line: string): void;
}

export interface StageWorker {
  readonly name: string;
  close(): Promise<void>;
}

/** Takes stage jobs from the queue: a result the remote already holds is returned, anything else runs here. */
export function startWorker(options: WorkerOptions): StageWorker {
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const connection = redisConnection(options.redisUrl);
  const worker = new Worker<QueuedStage, StageResult>(QUEUE_NAME, (job) => processStage(job, name, options), {
    connection,
    concurrency: options.concurrency,
    name,
    ...lockSettingsFrom(),
  });
  worker.on('error', (error) => options.print(`worker error: ${error.message}`));
  return {
    name,
    close: async () => {
      await worker.close();
      connection.disconnect();
    },
  };
}

async function processStage(bullJob: Job<QueuedStage>, worker: string, options: WorkerOptions): Promise<StageResult> {
  const { remote, cache, print } = options;
  const job = options.workdir ? { ...bullJob.data.job, workdir: options.workdir } : bullJob.data.job;
  const existing = job.force ? undefined : await remote.lookup(job.key);
  if (existing) {
    print(`= ${job.stage}: already in the remote cache`);
    return { ok: true, record: existing, worker, ran: false };
  }
  if (!existsSync(job.workdir)) {
    print(`✗ ${job.stage}: no directory ${job.workdir} here`);
    const detail = `the pipeline's directory ${job.workdir} does not exist here; start the worker with --workdir set to this machine's checkout of the project`;
    return { ok: false, failure: namingWorker({ reason: 'stage-failed', stage: job.stage, detail, userError: true }, worker), worker };
  }
  print(`▶ ${job.stage}: running (attempt ${bullJob.attemptsMade + 1})`);
  await pullInputs(job.inputs, remote, cache);
  try {
    const record = await runInChild({ job, cacheRoot: cache.root, settings: options.settings ?? {} }, (line) => print(`  ${job.stage}: ${line}`));
    await remote.publish(record, cache);
    print(`✓ ${job.stage}: ran in ${(record.durationMs / 1000).toFixed(1)}s`);
    return { ok: true, record, worker, ran: true };
  } catch (error) {
    if (!(error instanceof StageFailed)) throw error;
    print(`✗ ${job.stage}: failed`);
    return { ok: false, failure: namingWorker(error.failure, worker), worker };
  }
}

/** Which worker a stage failed on, where the failure has a free-text detail to say it in. */
function namingWorker(failure: Failure, worker: string): Failure {
  return failure.reason === 'stage-failed' ? { ...failure, detail: `worker ${worker}: ${failure.detail}` } : failure;
}
