import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffMetrics, maxDropViolations, metricDirection } from '../src/metrics.js';
import type { Lockfile, LockEntry } from '../src/lockfile.js';
import type { Pipeline } from '../src/pipeline.js';
import { changedParams, findRun, listRuns, recordRun, type RunEntry } from '../src/run-log.js';

function entry(pipeline: string, params: Record<string, unknown>): Omit<RunEntry, 'number'> {
  return { pipeline, startedAt: new Date(0).toISOString(), durationMs: 1, git: null, overrides: [], ok: true, keyMetrics: {}, stages: { head: { status: 'ran', key: null, params } } };
}

describe('the run log', () => {
  it('numbers concurrent runs uniquely, lists them per pipeline and finds them by number or from the end', async () => {
    const root = mkdtempSync(join(tmpdir(), 'runs-'));
    const recorded = await Promise.all([1, 2, 3, 4].map((i) => recordRun(root, entry(i % 2 ? '/a.yaml' : '/b.yaml', { lr: i }))));
    expect(recorded.map((run) => run.number).sort()).toEqual([1, 2, 3, 4]);
    const runsOfA = listRuns(root, '/a.yaml');
    expect(runsOfA.map((run) => (run.stages['head']!.params as { lr: number }).lr).sort()).toEqual([1, 3]);
    expect(listRuns(root)).toHaveLength(4);
    expect(findRun(runsOfA, 'latest')).toBe(runsOfA[1]);
    expect(findRun(runsOfA, 'latest~1')).toBe(runsOfA[0]);
    expect(findRun(runsOfA, `#${runsOfA[0]!.number}`)).toBe(runsOfA[0]);
    expect(findRun(runsOfA, 'latest~5')).toBeUndefined();
    expect(findRun(runsOfA, 'nope')).toBeUndefined();
  });

  it('names the params that changed since the run before, nested ones by path', () => {
    const before = { number: 1, ...entry('/a', { lr: 0.1, early_stopping: { patience: 3 }, layers: [1] }) };
    const after = { number: 2, ...entry('/a', { lr: 0.01, early_stopping: { patience: 3 }, layers: [1, 2] }) };
    expect(changedParams(before, after)).toEqual({ 'head.lr': { before: 0.1, after: 0.01 }, 'head.layers': { before: [1], after: [1, 2] } });
    expect(changedParams(undefined, after)).toEqual({});
  });
});

function lock(metrics: Record<string, Record<string, number>>): Lockfile {
  return { schema: 1, stages: Object.fromEntries(Object.entries(metrics).map(([id, m]) => [id, { metrics: m } as unknown as LockEntry])) };
}

function pipelineWith(params: Record<string, Record<string, unknown>>): Pipeline {
  const stages = new Map(Object.entries(params).map(([id, p]) => [id, { id, params: p }]));
  return { order: [...stages.keys()], stages } as unknown as Pipeline;
}

describe('metrics against a baseline', () => {
  it('lists each metric with its change, new and removed ones included', () => {
    const rows = diffMetrics(lock({ eval: { accuracy: 0.9, f1: 0.8 } }), lock({ eval: { accuracy: 0.85, auc: 0.7 } }));
    expect(rows).toEqual([
      { stage: 'eval', metric: 'accuracy', before: 0.85, after: 0.9, delta: 0.05 },
      { stage: 'eval', metric: 'auc', before: 0.7 },
      { stage: 'eval', metric: 'f1', after: 0.8 },
    ]);
  });

  it('max_drop flags a fall larger than allowed, accepts one within it, and notes a missing baseline', () => {
    const pipeline = pipelineWith({ a: { max_drop: { accuracy: 0.01 } }, b: { max_drop: { accuracy: 0.05 } }, c: { max_drop: { accuracy: 0 } }, d: {} });
    const current = lock({ a: { accuracy: 0.8 }, b: { accuracy: 0.8 }, c: { accuracy: 0.8 }, d: { accuracy: 0 } });
    const baseline = lock({ a: { accuracy: 0.82 }, b: { accuracy: 0.82 }, d: { accuracy: 1 } });
    const { violations, notes } = maxDropViolations(pipeline, current, baseline, 'main');
    expect(violations).toEqual(['stage "a": accuracy fell from 0.82 (main) to 0.8, by 0.02, more than max_drop 0.01']);
    expect(notes).toEqual(['stage "c": no metrics at main to compare with; max_drop not checked']);
  });

  it('max_drop on a loss flags a rise, not a fall (lower is better)', () => {
    const pipeline = pipelineWith({ worse: { max_drop: { val_loss: 0.05 } }, better: { max_drop: { val_loss: 0.05 } } });
    const current = lock({ worse: { val_loss: 0.5 }, better: { val_loss: 0.1 } });
    const baseline = lock({ worse: { val_loss: 0.3 }, better: { val_loss: 0.3 } });
    const { violations } = maxDropViolations(pipeline, current, baseline, 'main');
    expect(violations).toEqual(['stage "worse": val_loss rose from 0.3 (main) to 0.5, by 0.2, more than max_drop 0.05']);
  });

  it('one place decides which way a metric improves', () => {
    expect(['accuracy', 'macro_f1', 'top_3_accuracy', 'precision'].map(metricDirection)).toEqual(Array(4).fill('higher-is-better'));
    expect(['loss', 'val_loss', 'error_rate', 'mse'].map(metricDirection)).toEqual(Array(4).fill('lower-is-better'));
  });
});
