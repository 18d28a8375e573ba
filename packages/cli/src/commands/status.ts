import { availableParallelism } from 'node:os';
import { runPipeline } from '@headstart/core';
import { loadForCommand, openPipelineCache, type PipelineFlags } from '../load.js';
import { openRemote, type RemoteFlags } from '../remote-option.js';
import { createReporter, describeOutcome } from '../reporter.js';

interface StatusFlags extends PipelineFlags, RemoteFlags {
  check?: boolean;
  json?: boolean;
}

/** A dry run: the same decisions `run` makes, reported with the reason for each stage that would run. */
export async function statusCommand(file: string, flags: StatusFlags): Promise<number> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded.exitCode;
  const reporter = createReporter({ json: true, quiet: true, tty: false });
  const quietReporter = { ...reporter, stageFinished: () => {}, stageStarted: () => {} };
  const opened = await openRemote({ ...flags, push: 'never' }, (message) => reporter.warn(message), { pipelineRemote: loaded.pipeline.remote });
  if (!opened.ok) return opened.exitCode;
  const cache = openPipelineCache(loaded.pipeline, flags, (message) => reporter.warn(message));
  const remote = opened.remote ? { remote: opened.remote } : {};
  const summary = await runPipeline(loaded.pipeline, { cache, reporter: quietReporter, jobs: availableParallelism(), dryRun: true, ...remote }).finally(() => {
    opened.remote?.close();
    return cache.close();
  });
  const stale = summary.stages.filter((s) => s.status !== 'cached');
  if (flags.json) {
    const stages = summary.stages.map((s) => ({ id: s.id, status: s.remote ? 'remote-hit' : s.status === 'cached' ? 'up-to-date' : s.status, key: s.key ?? null, why: s.why ?? [] }));
    console.log(JSON.stringify({ pipeline: summary.pipeline, stages, upToDate: stale.length === 0 }, null, 2));
  } else {
    for (const outcome of summary.stages) console.log(outcome.remote ? `· ${outcome.id}: remote hit (will be pulled, not run)` : outcome.status === 'cached' ? `· ${outcome.id}: up to date` : describeOutcome(outcome));
    if (stale.length === 0) console.log('everything is up to date');
  }
  const failures = summary.stages.flatMap((s) => (s.failure ? [s.failure] : []));
  if (failures.length > 0) return 2;
  return flags.check && stale.length > 0 ? 1 : 0;
}
