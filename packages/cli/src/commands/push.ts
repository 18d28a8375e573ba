import { availableParallelism } from 'node:os';
import { formatFailure, runPipeline, selectStages, type Pipeline, type Reporter, type RunOptions, type RunSummary } from '@headstart/core';
import { loadForCommand, openPipelineCache, printFailures, unknownTargets, type PipelineFlags } from '../load.js';
import { openRemote, remoteFailureCode, type RemoteFlags } from '../remote-option.js';

export interface TransferFlags extends PipelineFlags, RemoteFlags {
  stage: string[];
}

/** Uploads the locally cached results of the pipeline's current stages (blobs first, each stage result last). */
export async function pushCommand(file: string, flags: TransferFlags): Promise<number> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded.exitCode;
  const { pipeline } = loaded;
  const badTargets = unknownTargets(pipeline, flags.stage);
  if (badTargets.length > 0) return printFailures(badTargets);
  const opened = await openRemote({ ...flags, push: 'always' }, warn, { pipelineRemote: pipeline.remote, required: true });
  if (!opened.ok) return opened.exitCode;
  const remote = opened.remote!;
  const cache = openPipelineCache(pipeline, flags, warn);
  try {
    const plan = await planStages(pipeline, flags, { cache, remote: undefined });
    if (plan.failed) return plan.failed;
    let notCached = 0;
    for (const outcome of plan.summary.stages) {
      if (!outcome.record) {
        console.log(`- ${outcome.id}: not in the local cache (run it first)`);
        notCached++;
        continue;
      }
      const report = await remote.publish(outcome.record, cache);
      console.log(`↑ ${outcome.id}: pushed (${report.uploaded} of ${report.objects} objects uploaded, ${formatBytes(report.uploadedBytes)})`);
    }
    return notCached > 0 ? 1 : 0;
  } catch (error) {
    return await remoteFailureCode(error);
  } finally {
    remote.close();
    await cache.close();
  }
}

export function warn(message: string): void {
  console.error(`warning: ${message}`);
}

/** The stages' keys and local results, as `status` computes them: a dry run that reports nothing itself. */
export async function planStages(pipeline: Pipeline, flags: TransferFlags, options: Pick<RunOptions, 'cache' | 'remote'>): Promise<{ summary: RunSummary; failed?: number }> {
  const reporter: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn };
  const summary = await runPipeline(pipeline, {
    ...options,
    reporter,
    jobs: availableParallelism(),
    dryRun: true,
    ...(flags.stage.length > 0 ? { targets: flags.stage.flatMap((target) => selectStages(pipeline, target)) } : {}),
  });
  const failures = summary.stages.flatMap((s) => (s.failure ? [s.failure] : []));
  for (const failure of failures) console.error(formatFailure(failure));
  return failures.length > 0 ? { summary, failed: 2 } : { summary };
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
