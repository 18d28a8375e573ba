import { resolve } from 'node:path';
import { cacheDirFor, openCache, type Cache, type Failure, type Result, type StageRunner } from '@headstart/core';
import type { S3RemoteCache } from '@headstart/remote';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { openRemote, type RemoteFlags } from '../remote-option.js';
import { stepSettings } from '../step-settings.js';

interface WorkerFlags extends RemoteFlags {
  redis: string;
  concurrency: number;
  name?: string;
  cacheDir?: string;
  workdir?: string;
}

/** `headstart worker`: takes stage jobs until SIGINT/SIGTERM, then finishes the running ones and exits. */
export async function workerCommand(flags: WorkerFlags): Promise<CommandResult> {
  const { checkRedis, startWorker } = await import('@headstart/queue');
  const unreachable = await checkRedis(flags.redis);
  if (unreachable) return failWith({ reason: 'queue-unavailable', detail: unreachable });
  const warn = (message: string) => console.error(`warning: ${message}`);
  const opened = await openRemote(flags, warn, { required: true });
  if (!opened.ok) return opened;
  const remote = opened.value!;
  const cache = openCache(cacheDirFor(process.cwd(), flags.cacheDir), warn);
  const worker = startWorker({ redisUrl: flags.redis, remote, cache, concurrency: flags.concurrency, ...(flags.name ? { name: flags.name } : {}), ...(flags.workdir ? { workdir: resolve(flags.workdir) } : {}), settings: stepSettings({}), print: (line) => console.log(line) });
  console.log(`worker ${worker.name}: waiting for stage jobs (concurrency ${flags.concurrency})`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log(`worker ${worker.name}: stopping after the running stages`);
  await worker.close();
  remote.close();
  await cache.close();
  return exitWith(0);
}

export type QueueRunner = StageRunner & { close(): Promise<void> };

/** For `run --executor queue`: the stage runner that hands stages to workers, or why there is none. */
export async function openQueueRunner(redisUrl: string | undefined, remote: S3RemoteCache | undefined, cache: Cache): Promise<Result<QueueRunner, Failure>> {
  if (!redisUrl) return { ok: false, error: { reason: 'usage', detail: '--executor queue needs --redis redis://host:6379' } };
  if (!remote) return { ok: false, error: { reason: 'usage', detail: '--executor queue needs a remote cache the workers share: pass --remote s3://bucket/prefix or set HEADSTART_REMOTE' } };
  const { checkRedis, QueueStageRunner } = await import('@headstart/queue');
  const unreachable = await checkRedis(redisUrl);
  if (unreachable) return { ok: false, error: { reason: 'queue-unavailable', detail: unreachable } };
  const runner = new QueueStageRunner(redisUrl, remote, cache);
  await runner.ready();
  return { ok: true, value: runner };
}
