// The child process that runs one stage for a worker, so that a CPU-bound step never blocks the worker's
// event loop (which renews the job's lock). It exits when its worker goes: no orphan after a kill -9.
import { canonicalJson, openCache, resolveStep, runStageJob, type StageJob } from '@headstart/core';
import { builtinSteps } from '@headstart/steps';
import type { ChildMessage, ChildRequest } from './job-data.js';
import { messageOf } from './redis.js';

process.on('disconnect', () => process.exit(1));
process.once('message', (request: ChildRequest) => {
  void runRequest(request).then((message) => process.send!(message, () => process.disconnect()));
});

async function runRequest({ job, cacheRoot }: ChildRequest): Promise<ChildMessage> {
  const resolved = await resolveStep(job.uses, job.workdir, builtinSteps);
  if (!resolved.ok) return { type: 'failed', refused: true, message: `cannot resolve uses "${job.uses}" here${resolved.detail}` };
  const skew = identitySkew(job, resolved.value.identity);
  if (skew) return { type: 'failed', refused: true, message: skew };
  const cache = openCache(cacheRoot, (message) => send({ type: 'log', level: 'warn', message }));
  try {
    const record = await runStageJob(job, resolved.value.step, cache, {
      signal: new AbortController().signal,
      log: (level, message) => send({ type: 'log', level, message }),
      progress: () => undefined,
    });
    return { type: 'done', record };
  } catch (error) {
    return { type: 'failed', refused: false, message: messageOf(error) };
  } finally {
    await cache.close();
  }
}

/** The worker must run the very code the coordinator keyed the stage with. */
function identitySkew(job: StageJob, identity: unknown): string | undefined {
  if (canonicalJson(identity) === canonicalJson(job.keyDocument.step)) return undefined;
  return `version skew: this worker resolves "${job.uses}" to ${canonicalJson(identity)}, the job was keyed with ${canonicalJson(job.keyDocument.step)}; refusing it`;
}

function send(message: ChildMessage): void {
  process.send?.(message);
}
