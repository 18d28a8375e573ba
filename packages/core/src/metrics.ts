import type { Lockfile } from './lockfile.js';
import type { Pipeline } from './pipeline.js';

/** One metric of one stage, before (the baseline) and after (the current lock file). */
export interface MetricRow {
  stage: string;
  metric: string;
  before?: number;
  after?: number;
  /** after − before, when both exist. */
  delta?: number;
}

/** Every recorded metric of the current lock file against the baseline's, stage by stage, in lock order. */
export function diffMetrics(current: Lockfile, baseline?: Lockfile): MetricRow[] {
  const rows: MetricRow[] = [];
  const stageIds = [...new Set([...Object.keys(current.stages), ...Object.keys(baseline?.stages ?? {})])];
  for (const stage of stageIds) {
    const after = current.stages[stage]?.metrics ?? {};
    const before = baseline?.stages[stage]?.metrics ?? {};
    for (const metric of [...new Set([...Object.keys(after), ...Object.keys(before)])].sort()) {
      const row: MetricRow = { stage, metric };
      if (metric in before) row.before = before[metric]!;
      if (metric in after) row.after = after[metric]!;
      if (row.before !== undefined && row.after !== undefined) row.delta = roundDelta(row.after - row.before);
      rows.push(row);
    }
  }
  return rows;
}

/**
 * Whether a larger value of a metric is better. Losses and error rates fall as a model improves; every other
 * metric the steps record (accuracy, precision, recall, F1, top-k) rises. The one place that decides it.
 */
export function metricDirection(metric: string): 'higher-is-better' | 'lower-is-better' {
  return /loss|error|(^|_)mae$|(^|_)mse$|(^|_)rmse$/.test(metric) ? 'lower-is-better' : 'higher-is-better';
}

/** How much worse `now` is than `was` for this metric (negative when it improved). */
export function worsening(metric: string, was: number, now: number): number {
  return metricDirection(metric) === 'higher-is-better' ? was - now : now - was;
}

function roundDelta(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

/**
 * Stages may declare `max_drop: { metric: amount }` in their params: the largest worsening of that metric
 * against the baseline the run accepts (a fall for accuracy, a rise for a loss: see metricDirection).
 * Returns one message per metric that got worse by more (the run then exits 3) and one note per stage that
 * has no baseline to compare with (it passes).
 */
export function maxDropViolations(pipeline: Pipeline, current: Lockfile, baseline: Lockfile, baselineName: string): { violations: string[]; notes: string[] } {
  const violations: string[] = [];
  const notes: string[] = [];
  for (const id of pipeline.order) {
    const limits = maxDropOf(pipeline.stages.get(id)!.params);
    if (Object.keys(limits).length === 0) continue;
    const before = baseline.stages[id]?.metrics;
    const after = current.stages[id]?.metrics;
    if (!before) {
      notes.push(`stage "${id}": no metrics at ${baselineName} to compare with; max_drop not checked`);
      continue;
    }
    for (const [metric, allowed] of Object.entries(limits)) {
      const [was, now] = [before[metric], after?.[metric]];
      if (was === undefined || now === undefined) continue;
      const drop = worsening(metric, was, now);
      const moved = metricDirection(metric) === 'higher-is-better' ? 'fell' : 'rose';
      if (drop > allowed + 1e-12) violations.push(`stage "${id}": ${metric} ${moved} from ${was} (${baselineName}) to ${now}, by ${roundDelta(drop)}, more than max_drop ${allowed}`);
    }
  }
  return { violations, notes };
}

function maxDropOf(params: Record<string, unknown>): Record<string, number> {
  const value = params['max_drop'];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((entry): entry is [string, number] => typeof entry[1] === 'number'));
}
