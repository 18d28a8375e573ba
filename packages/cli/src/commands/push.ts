import { availableParallelism } from 'node:os';
import { formatBytes, runPipeline, selectStages, type Failure, type Pipeline, type Reporter, type Result, type RunOptions, type RunSummary } from '@headstart/core';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { loadForCommand, openPipelineCache, unknownTargets, type PipelineFlags } from '../load.js';
import { openRemote, remoteFailure, type RemoteFlags } from '../remote-option.js';

export interface TransferFlags extends PipelineFlags, RemoteFlags {
  stage: string[];
}

/** Uploads the locally cached results of the pipeline's current stages (blobs first, each stage result last). */
export async function pushCommand(file: string, flags: TransferFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  const pipeline = loaded.value;
  const badTargets = unknownTargets(pipeline, flags.stage);
  if (badTargets.length > 0) return failWith(...badTargets);
  const opened = await openRemote({ ...flags, push: 'always' }, warn, { pipelineRemote: pipeline.remote, required: true });
  if (!opened.ok) return opened;
  const remote = opened.value!;
  const cache = openPipelineCache(pipeline, flags, warn);
  try {
    const plan = await planStages(pipeline, flags, { cache, remote: undefined });
    if (!plan.ok) return plan;
    let notCached = 0;
    for (const outcome of plan.value.stages) {
      if (!outcome.record) {
        console.log(`- ${outcome.id}: not in the local cache (run it first)`);
        notCached++;
        continue;
      }
      const report = await remote.publish(outcome.record, cache);
      console.log(`↑ ${outcome.id}: pushed (${report.uploaded} of ${report.objects} objects uploaded, ${formatBytes(report.uploadedBytes)})`);
    }
    return exitWith(notCached > 0 ? 1 : 0);
  } catch (error) {
    return failWith(await remoteFailure(error));
  } finally {
    remote.close();
    await cache.close();
  }
}

export function warn(message: string): void {
  console.error(`warning: ${message}`);
}

/** The stages' keys and local results, as `status` computes them: a dry run that reports nothing itself. */
export async function planStages(pipeline: Pipeline, flags: TransferFlags, options: Pick<RunOptions, 'cache' | 'remote'>): Promise<Result<RunSummary, Failure[]>> {
  const reporter: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn };
  const summary = await runPipeline(pipeline, {
    ...options,
    reporter,
    jobs: availableParallelism(),
    dryRun: true,
    ...(flags.stage.length > 0 ? { targets: flags.stage.flatMap((target) => selectStages(pipeline, target)) } : {}),
  });
  const failures = summary.stages.flatMap((s) => (s.failure ? [s.failure] : []));
  return failures.length > 0 ? { ok: false, error: failures } : { ok: true, value: summary };
}
