import { availableParallelism } from 'node:os';
import { runPipeline } from '@headstart/core';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { loadForCommand, openPipelineCache, type PipelineFlags } from '../load.js';
import { openRemote, type RemoteFlags } from '../remote-option.js';
import { createReporter, describeOutcome, sourceLines } from '../reporter.js';

interface StatusFlags extends PipelineFlags, RemoteFlags {
  check?: boolean;
  json?: boolean;
}

/** A dry run: the same decisions `run` makes, reported with the reason for each stage that would run. */
export async function statusCommand(file: string, flags: StatusFlags): Promise<CommandResult> {
  const loaded = await loadForCommand(file, flags);
  if (!loaded.ok) return loaded;
  const pipeline = loaded.value;
  const reporter = createReporter({ json: true, quiet: true, tty: false });
  const quietReporter = { ...reporter, stageFinished: () => {}, stageStarted: () => {} };
  const opened = await openRemote({ ...flags, push: 'never' }, (message) => reporter.warn(message), { pipelineRemote: pipeline.remote });
  if (!opened.ok) return opened;
  const cache = openPipelineCache(pipeline, flags, (message) => reporter.warn(message));
  const remote = opened.value ? { remote: opened.value } : {};
  const summary = await runPipeline(pipeline, { cache, reporter: quietReporter, jobs: availableParallelism(), dryRun: true, ...remote }).finally(() => {
    opened.value?.close();
    return cache.close();
  });
  const stale = summary.stages.filter((s) => s.status !== 'cached');
  if (flags.json) {
    const stages = summary.stages.map((s) => ({ id: s.id, status: s.remote ? 'remote-hit' : s.status === 'cached' ? 'up-to-date' : s.status, key: s.key ?? null, why: s.why ?? [], ...(s.sources ? { sources: s.sources } : {}) }));
    console.log(JSON.stringify({ pipeline: summary.pipeline, stages, upToDate: stale.length === 0 }, null, 2));
  } else {
    for (const outcome of summary.stages) console.log(outcome.remote ? `· ${outcome.id}: remote hit (will be pulled, not run)${sourceLines(outcome)}` : outcome.status === 'cached' ? `· ${outcome.id}: up to date${sourceLines(outcome)}` : describeOutcome(outcome));
    if (stale.length === 0) console.log('everything is up to date');
  }
  const failures = summary.stages.flatMap((s) => (s.failure ? [s.failure] : []));
  if (failures.length > 0) return failWith(...failures);
  return exitWith(flags.check && stale.length > 0 ? 1 : 0);
}
