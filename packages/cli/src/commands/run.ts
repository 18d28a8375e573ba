import { availableParallelism } from 'node:os';
import { gitState, isUserError, recordRun, runEntryFor, runPipeline, selectStages, type Failure, type RunSummary, type StageOutcome } from '@headstart/core';
import { checkMaxDrop } from '../baseline.js';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { loadForCommand, openPipelineCache, unknownTargets, type PipelineFlags } from '../load.js';
import { openRemote, type RemoteFlags } from '../remote-option.js';
import { createReporter } from '../reporter.js';
import { stepSettings } from '../step-settings.js';
import { openQueueRunner } from './worker.js';

interface RunFlags extends PipelineFlags, RemoteFlags {
  stage: string[];
  force: string[];
  forceAll?: boolean;
  dryRun?: boolean;
  json?: boolean;
  jobs?: number;
  keepGoing?: boolean;
  quiet?: boolean;
  backend?: string;
  workers?: number;
  baseline: string;
  executor: 'local' | 'queue';
  redis?: string;
}

/** With --executor queue, stages in flight at once by default: the workers' concurrency is the real limit. */
const QUEUED_AT_ONCE = 64;

export async function runCommand(file: string, flags: RunFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  const pipeline = loaded.value;
  const badTargets = unknownTargets(pipeline, [...flags.stage, ...flags.force]);
  if (badTargets.length > 0) return failWith(...badTargets);

  const reporter = createReporter({ json: flags.json ?? false, quiet: flags.quiet ?? false, tty: process.stdout.isTTY === true && process.stderr.isTTY === true });
  const opened = await openRemote(flags, (message) => reporter.warn(message), { pipelineRemote: pipeline.remote });
  if (!opened.ok) return opened;
  const remote = opened.value;
  const cache = openPipelineCache(pipeline, flags, (message) => reporter.warn(message));
  const queued = flags.executor === 'queue' ? await openQueueRunner(flags.redis, remote, cache) : undefined;
  if (queued && !queued.ok) {
    remote?.close();
    await cache.close();
    return failWith(queued.error);
  }
  const queue = queued?.value;
  const startedAt = new Date();
  const git = gitState(pipeline.dir);
  const interrupt = new AbortController();
  // `on`, not `once`: execa's exit hook re-raises a signal that has no listener left, killing us mid-cleanup.
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(130);
    reporter.warn('interrupted: stopping running stages; nothing half-written is kept (Ctrl-C again to quit now)');
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let summary: RunSummary;
  try {
    summary = await runPipeline(pipeline, {
      cache,
      reporter,
      jobs: flags.jobs ?? (queue ? QUEUED_AT_ONCE : availableParallelism()),
      ...(flags.stage.length > 0 ? { targets: flags.stage.flatMap((target) => selectStages(pipeline, target)) } : {}),
      force: flags.forceAll ? 'all' : flags.force.flatMap((target) => selectStages(pipeline, target)),
      dryRun: flags.dryRun ?? false,
      failureMode: flags.keepGoing ? 'keep-going' : 'no-new',
      signal: interrupt.signal,
      ...(remote ? { remote } : {}),
      ...(queue ? { stageRunner: queue } : {}),
      settings: stepSettings(flags),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await queue?.close();
    remote?.close();
    await cache.close();
  }
  if (flags.json) {
    const stages = summary.stages.map(stageJson);
    process.stdout.write(`${JSON.stringify({ pipeline: summary.pipeline, stages, ok: summary.ok }, null, 2)}\n`);
  }
  const failures = summary.stages.flatMap((s) => (s.failure ? [s.failure] : []));
  // Bad input leaves the cache as it was, the run log included.
  if (!flags.dryRun && !failures.some(isUserError)) await recordRun(cache.root, runEntryFor(pipeline, summary, { startedAt, git: (await git) ?? null, overrides: flags.set ?? [] }));
  if (interrupt.signal.aborted) return exitWith(130);
  if (failures.length > 0) return failWith(...failures);
  const gates = [...failedChecks(summary), ...(flags.dryRun ? [] : await checkMaxDrop(pipeline, flags.baseline))];
  return gates.length > 0 ? failWith(...gates) : exitWith(0);
}

/** Each evaluate stage's `fail_under` that its metrics missed (also when cached). */
function failedChecks(summary: RunSummary): Failure[] {
  return summary.stages.flatMap((s) => (s.record?.failedChecks ?? []).map((detail) => ({ reason: 'gate-failed' as const, stage: s.id, detail })));
}

function stageJson(outcome: StageOutcome): Record<string, unknown> {
  const { id, status, key, durationMs, why, record, remote, sources } = outcome;
  return { id, status, key: key ?? null, durationMs, why, remote, sources, metrics: record?.metrics, info: record?.info, failedChecks: record?.failedChecks };
}
