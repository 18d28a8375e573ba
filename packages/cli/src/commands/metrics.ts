import { dirname, resolve } from 'node:path';
import { diffMetrics, lockfilePath, readLockfile, type MetricRow } from '@headstart/core';
import { baselineLockfile } from '../baseline.js';
import { exitWith, failWith, type CommandResult } from '../command-result.js';
import { formatDelta, formatNumber, renderTable } from '../table.js';

interface MetricsFlags {
  json?: boolean;
  md?: boolean;
  pipeline: string;
}

function lockPathOf(pipelineFile: string): string {
  const path = resolve(pipelineFile);
  return lockfilePath({ file: { path, text: '' }, dir: dirname(path) });
}

/** `headstart metrics show`: the metrics recorded in the current lock file. */
export async function metricsShowCommand(pipelineFile: string, flags: Omit<MetricsFlags, 'pipeline'>): Promise<CommandResult> {
  const rows = diffMetrics(readLockfile(lockPathOf(pipelineFile)));
  if (flags.json) console.log(JSON.stringify(rows.map(({ stage, metric, after }) => ({ stage, metric, value: after })), null, 2));
  else if (rows.length === 0) console.error(`${lockPathOf(pipelineFile)}: no metrics recorded (run the pipeline first)`);
  else console.log(renderTable(['stage', 'metric', 'value'], rows.map((row) => [row.stage, row.metric, formatNumber(row.after)]), ['l', 'l', 'r']));
  return exitWith(0);
}

/** `headstart metrics diff [REV]`: the current lock file's metrics against those committed at REV. */
export async function metricsDiffCommand(revision: string, flags: MetricsFlags): Promise<CommandResult> {
  const lockPath = lockPathOf(flags.pipeline);
  const baseline = await baselineLockfile(lockPath, revision);
  if (!baseline.ok && baseline.missing !== 'file') return failWith({ reason: 'no-baseline', path: lockPath, detail: baseline.why });
  const rows = diffMetrics(readLockfile(lockPath), baseline.ok ? baseline.lockfile : undefined);
  if (flags.json) {
    console.log(JSON.stringify({ baseline: revision, rows }, null, 2));
    return exitWith(0);
  }
  const note = baseline.ok ? '' : `(${baseline.why}: every metric is new)\n\n`;
  const table = diffTable(rows, revision);
  console.log(flags.md ? `### headstart metrics: ${revision} → working tree\n\n${note}${table}` : `${note}${table}`);
  return exitWith(0);
}

function diffTable(rows: MetricRow[], revision: string): string {
  const body = rows.map((row) => [row.stage, row.metric, formatNumber(row.before), formatNumber(row.after), formatDelta(row.delta)]);
  return renderTable(['stage', 'metric', revision, 'working tree', 'change'], body, ['l', 'l', 'r', 'r', 'r']);
}
