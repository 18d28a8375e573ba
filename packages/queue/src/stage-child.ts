// The child process that runs one stage for a worker, so that a CPU-bound step never blocks the worker's
// event loop (which renews the job's lock). It exits when its worker goes: no orphan after a kill -9.
// The handlers are registered before anything heavy loads: a worker killed while its child is still
// importing the steps must not leave the child behind for the seconds that takes on a busy machine.
import type { StageJob } from '@headstart/core';
import type { ChildMessage, ChildRequest } from './job-data.js';

process.on('disconnect', () => process.exit(1));
process.once('message', (request: ChildRequest) => {
  void runRequest(request).then((message) => process.send!(message, () => process.disconnect()));
});

async function runRequest({ job, cacheRoot, settings }: ChildRequest): Promise<ChildMessage> {
  const { openCache, resolveStep, runStageJob, stageFailure } = await import('@headstart/core');
  const { builtinSteps } = await import('@headstart/steps');
  const resolved = await resolveStep(job.uses, job.workdir, builtinSteps);
  // The worker's checkout lacks the step (a file not pulled, a package not installed): the user's setup.
  if (!resolved.ok) return refused(job, `cannot resolve uses "${job.uses}" here${resolved.detail}`, true);
  const skew = await identitySkew(job, resolved.value.identity);
  if (skew) return refused(job, skew, false);
  const cache = openCache(cacheRoot, (message) => send({ type: 'log', level: 'warn', message }));
  try {
    const record = await runStageJob(job, resolved.value.step, cache, {
      signal: new AbortController().signal,
      log: (level, message) => send({ type: 'log', level, message }),
      progress: () => undefined,
    }, { env: process.env, settings });
    return { type: 'done', record };
  } catch (error) {
    return { type: 'failed', failure: stageFailure(job.stage, error) };
  } finally {
    await cache.close();
  }
}

/** This worker cannot run the job as keyed: another would fail the same way. */
function refused(job: StageJob, detail: string, userError: boolean): ChildMessage {
  return { type: 'failed', failure: { reason: 'stage-failed', stage: job.stage, detail, userError } };
}

/** The worker must run the very code the coordinator keyed the stage with. */
async function identitySkew(job: StageJob, identity: unknown): Promise<string | undefined> {
  const { canonicalJson } = await import('@headstart/core');
  if (canonicalJson(identity) === canonicalJson(job.keyDocument.step)) return undefined;
  return `version skew: this worker resolves "${job.uses}" to ${canonicalJson(identity)}, the job was keyed with ${canonicalJson(job.keyDocument.step)}; refusing it`;
}

function send(message: ChildMessage): void {
  process.send?.(message);
}
