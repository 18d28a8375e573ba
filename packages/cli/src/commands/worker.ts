import { resolve } from 'node:path';
import { cacheDirFor, openCache, type Cache, type StageRunner } from '@headstart/core';
import type { S3RemoteCache } from '@headstart/remote';
import { openRemote, type RemoteFlags } from '../remote-option.js';

interface WorkerFlags extends RemoteFlags {
  redis: string;
  concurrency: number;
  name?: string;
  cacheDir?: string;
  workdir?: string;
}

/** `headstart worker`: takes stage jobs until SIGINT/SIGTERM, then finishes the running ones and exits. */
export async function workerCommand(flags: WorkerFlags): Promise<number> {
  const { checkRedis, startWorker } = await import('@headstart/queue');
  const unreachable = await checkRedis(flags.redis);
  if (unreachable) return usageError(unreachable);
  const warn = (message: string) => console.error(`warning: ${message}`);
  const opened = await openRemote(flags, warn, { required: true });
  if (!opened.ok) return opened.exitCode;
  const remote = opened.remote!;
  const cache = openCache(cacheDirFor(process.cwd(), flags.cacheDir), warn);
  const worker = startWorker({ redisUrl: flags.redis, remote, cache, concurrency: flags.concurrency, ...(flags.name ? { name: flags.name } : {}), ...(flags.workdir ? { workdir: resolve(flags.workdir) } : {}), print: (line) => console.log(line) });
  console.log(`worker ${worker.name}: waiting for stage jobs (concurrency ${flags.concurrency})`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  console.log(`worker ${worker.name}: stopping after the running stages`);
  await worker.close();
  remote.close();
  await cache.close();
  return 0;
}

export type QueueRunner = StageRunner & { close(): Promise<void> };

/** For `run --executor queue`: the stage runner that hands stages to workers; undefined after printing why not. */
export async function openQueueRunner(redisUrl: string | undefined, remote: S3RemoteCache | undefined, cache: Cache): Promise<QueueRunner | undefined> {
  if (!redisUrl) return void usageError('--executor queue needs --redis redis://host:6379');
  if (!remote) return void usageError('--executor queue needs a remote cache the workers share: pass --remote s3://bucket/prefix or set HEADSTART_REMOTE');
  const { checkRedis, QueueStageRunner } = await import('@headstart/queue');
  const unreachable = await checkRedis(redisUrl);
  if (unreachable) return void usageError(unreachable);
  const runner = new QueueStageRunner(redisUrl, remote, cache);
  await runner.ready();
  return runner;
}

function usageError(message: string): number {
  console.error(message);
  return 2;
}
