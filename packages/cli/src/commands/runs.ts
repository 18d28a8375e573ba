import { dirname, resolve } from 'node:path';
import { cacheDirFor, changedParams, findRun, flattenParams, listRuns, metricDirection, type RunEntry } from '@headstart/core';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { formatDuration } from '../reporter.js';
import { formatNumber, renderTable } from '../table.js';

interface RunsFlags {
  cacheDir?: string;
  limit: number;
  json?: boolean;
}

interface CompareFlags extends Omit<RunsFlags, 'limit'> {
  pipeline: string;
  best?: string;
  all?: boolean;
  md?: boolean;
}

function runsOf(pipelineFile: string, cacheDir: string | undefined): RunEntry[] {
  const path = resolve(pipelineFile);
  return listRuns(cacheDirFor(dirname(path), cacheDir), path);
}

/** `headstart runs`: the pipeline's past runs, newest last, with what changed and what they scored. */
export async function runsCommand(pipelineFile: string, flags: RunsFlags): Promise<CommandResult> {
  const runs = runsOf(pipelineFile, flags.cacheDir);
  const shown = runs.slice(-flags.limit);
  if (flags.json) {
    console.log(JSON.stringify(shown, null, 2));
    return exitWith(0);
  }
  if (runs.length === 0) {
    console.error(`${pipelineFile}: no runs recorded yet`);
    return exitWith(0);
  }
  const rows = shown.map((run) => {
    const previous = runs[runs.indexOf(run) - 1];
    const changes = Object.entries(changedParams(previous, run)).map(([name, change]) => `${name}=${JSON.stringify(change.after)}`);
    const ran = Object.values(run.stages).filter((stage) => stage.status === 'ran').length;
    return [
      `#${run.number}`,
      run.startedAt.slice(0, 16).replace('T', ' '),
      run.git ? `${run.git.commit.slice(0, 7)}${run.git.dirty ? '+dirty' : ''}` : '–',
      formatDuration(run.durationMs),
      `${run.ok ? 'ok' : 'failed'}, ${ran} ran`,
      changes.join(' ') || '–',
      headline(run.keyMetrics),
    ];
  });
  console.log(renderTable(['run', 'started (UTC)', 'commit', 'took', 'result', 'changed params', 'key metrics'], rows));
  return exitWith(0);
}

/** The first two metrics of each stage nothing consumes: enough to tell runs apart in a table row. */
function headline(keyMetrics: Record<string, number>): string {
  const perStage = new Map<string, number>();
  const shown = Object.entries(keyMetrics).filter(([name]) => {
    const stage = name.slice(0, name.lastIndexOf('.'));
    perStage.set(stage, (perStage.get(stage) ?? 0) + 1);
    return perStage.get(stage)! <= 2;
  });
  return shown.map(([name, value]) => `${name}=${formatNumber(value)}`).join(' ') || '–';
}

/** `headstart compare RUN…`: params and metrics side by side; `--best METRIC` adds the best run. */
export async function compareCommand(references: string[], flags: CompareFlags): Promise<CommandResult> {
  const runs = runsOf(flags.pipeline, flags.cacheDir);
  const chosen: RunEntry[] = [];
  for (const reference of references) {
    const run = findRun(runs, reference);
    if (!run) return failWith({ reason: 'unknown-run', pipeline: flags.pipeline, run: reference, have: runs.map((r) => r.number) });
    chosen.push(run);
  }
  if (flags.best) {
    const best = bestRun(runs, flags.best);
    if (!best) return failWith({ reason: 'unknown-metric', pipeline: flags.pipeline, metric: flags.best });
    console.error(`best by ${flags.best}: run #${best.run.number} (${best.metric} = ${formatNumber(best.value)})`);
    if (!chosen.includes(best.run)) chosen.unshift(best.run);
    if (chosen.length === 1 && runs.at(-1) !== best.run) chosen.push(runs.at(-1)!);
  }
  if (chosen.length === 0) return failWith({ reason: 'usage', detail: 'name runs to compare (e.g. `headstart compare 3 latest`) or give --best METRIC' });
  const rows = comparisonRows(chosen, flags.all ?? false);
  if (flags.json) {
    console.log(JSON.stringify({ runs: chosen.map((run) => run.number), rows }, null, 2));
    return exitWith(0);
  }
  const header = ['', '', ...chosen.map((run) => `#${run.number}${run.git ? ` ${run.git.commit.slice(0, 7)}${run.git.dirty ? '+' : ''}` : ''}`)];
  console.log(renderTable(header, rows.map((row) => [row.kind, row.name, ...row.values.map((value) => (typeof value === 'number' ? formatNumber(value) : value === undefined ? '–' : JSON.stringify(value)))])));
  return exitWith(0);
}

interface ComparisonRow {
  kind: 'param' | 'metric';
  name: string;
  values: unknown[];
}

/** Params that differ between the runs (all with `all`), then every metric. */
function comparisonRows(runs: RunEntry[], all: boolean): ComparisonRow[] {
  const params = runs.map((run) => Object.fromEntries(Object.entries(run.stages).flatMap(([id, stage]) => Object.entries(flattenParams(stage.params)).map(([name, value]) => [`${id}.${name}`, value]))));
  const metrics = runs.map((run) => Object.fromEntries(Object.entries(run.stages).flatMap(([id, stage]) => Object.entries(stage.metrics ?? {}).map(([name, value]) => [`${id}.${name}`, value]))));
  const rowsOf = (kind: ComparisonRow['kind'], tables: Record<string, unknown>[], keep: (values: unknown[]) => boolean) =>
    [...new Set(tables.flatMap((table) => Object.keys(table)))]
      .map((name) => ({ kind, name, values: tables.map((table) => table[name]) }))
      .filter((row) => keep(row.values));
  const differs = (values: unknown[]) => new Set(values.map((value) => JSON.stringify(value))).size > 1;
  return [...rowsOf('param', params, (values) => all || differs(values)), ...rowsOf('metric', metrics, () => true)];
}

/** The run with the highest value of `metric` (`stage.metric`, or a bare name matched in any stage); lowest for losses. */
function bestRun(runs: RunEntry[], metric: string): { run: RunEntry; metric: string; value: number } | undefined {
  const lowerIsBetter = metricDirection(metric.split('.').pop()!) === 'lower-is-better';
  let best: { run: RunEntry; metric: string; value: number } | undefined;
  for (const run of runs) {
    for (const [id, stage] of Object.entries(run.stages)) {
      for (const [name, value] of Object.entries(stage.metrics ?? {})) {
        if (metric !== name && metric !== `${id}.${name}`) continue;
        if (!best || (lowerIsBetter ? value < best.value : value > best.value)) best = { run, metric: `${id}.${name}`, value };
      }
    }
  }
  return best;
}
