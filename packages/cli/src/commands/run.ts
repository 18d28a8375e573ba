import { availableParallelism } from 'node:os';
import { runPipeline, type RunSummary, type StageOutcome } from '@headstart/core';
import { loadForCommand, openPipelineCache, printFailures, unknownTargets, type PipelineFlags } from '../load.js';
import { createReporter } from '../reporter.js';

interface RunFlags extends PipelineFlags {
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
}

export async function runCommand(file: string, flags: RunFlags): Promise<number> {
  if (flags.backend) process.env['HEADSTART_BACKEND'] = flags.backend;
  if (flags.workers) process.env['HEADSTART_WORKERS'] = String(flags.workers);
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded.exitCode;
  const { pipeline } = loaded;
  const badTargets = unknownTargets(pipeline, [...flags.stage, ...flags.force]);
  if (badTargets.length > 0) return printFailures(badTargets);

  const reporter = createReporter({ json: flags.json ?? false, quiet: flags.quiet ?? false, tty: process.stdout.isTTY === true && process.stderr.isTTY === true });
  const cache = openPipelineCache(pipeline, flags, (message) => reporter.warn(message));
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
      jobs: flags.jobs ?? availableParallelism(),
      ...(flags.stage.length > 0 ? { targets: flags.stage } : {}),
      force: flags.forceAll ? 'all' : flags.force,
      dryRun: flags.dryRun ?? false,
      failureMode: flags.keepGoing ? 'keep-going' : 'no-new',
      signal: interrupt.signal,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cache.close();
  }
  if (flags.json) {
    const stages = summary.stages.map(stageJson);
    process.stdout.write(`${JSON.stringify({ pipeline: summary.pipeline, stages, ok: summary.ok }, null, 2)}\n`);
  }
  if (interrupt.signal.aborted) return 130;
  const failures = summary.stages.flatMap((s) => (s.failure ? [s.failure] : []));
  if (failures.length > 0) return failures.some((f) => f.reason !== 'stage-failed' || f.userError) ? 2 : 1;
  const failedChecks = summary.stages.flatMap((s) => (s.record?.failedChecks ?? []).map((check) => `stage "${s.id}": ${check}`));
  for (const check of failedChecks) console.error(check);
  return failedChecks.length > 0 ? 3 : 0;
}

function stageJson(outcome: StageOutcome): Record<string, unknown> {
  const { id, status, key, durationMs, why, record } = outcome;
  return { id, status, key: key ?? null, durationMs, why, metrics: record?.metrics, info: record?.info, failedChecks: record?.failedChecks };
}
