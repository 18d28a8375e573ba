import { readdirSync, readFileSync } from 'node:fs';
import { link, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunSummary, StageStatus } from './executor.js';
import type { GitState } from './git.js';
import type { Pipeline } from './pipeline.js';
import { tempSibling } from './util/atomic-write.js';

/** One `headstart run`, as `headstart runs` and `compare` show it. */
export interface RunEntry {
  /** 1, 2, 3… per cache directory: what the user types to name a run. */
  number: number;
  /** Absolute path of the pipeline file. */
  pipeline: string;
  startedAt: string;
  durationMs: number;
  git: GitState | null;
  /** The `--set` overrides given on the command line. */
  overrides: string[];
  ok: boolean;
  stages: Record<string, RunStage>;
  /** `stage.metric` → value for the stages nothing else consumes (evaluate, usually): the run's headline. */
  keyMetrics: Record<string, number>;
}

export interface RunStage {
  status: StageStatus;
  key: string | null;
  params: unknown;
  metrics?: Record<string, number>;
}

const RUNS_DIR = 'runs';

/** What a finished (not dry) run records about itself. */
export function runEntryFor(pipeline: Pipeline, summary: RunSummary, o: { startedAt: Date; git: GitState | null; overrides: string[] }): Omit<RunEntry, 'number'> {
  const stages = Object.fromEntries(summary.stages.map((s) => [s.id, { status: s.status, key: s.key ?? null, params: pipeline.stages.get(s.id)!.keyParams, ...(s.record?.metrics ? { metrics: s.record.metrics } : {}) }]));
  const consumed = new Set(pipeline.order.flatMap((id) => pipeline.stages.get(id)!.upstream));
  const keyMetrics = Object.fromEntries(summary.stages.filter((s) => !consumed.has(s.id)).flatMap((s) => Object.entries(s.record?.metrics ?? {}).map(([name, value]) => [`${s.id}.${name}`, value])));
  return { pipeline: pipeline.file.path, startedAt: o.startedAt.toISOString(), durationMs: Date.now() - o.startedAt.getTime(), git: o.git, overrides: o.overrides, ok: summary.ok, stages, keyMetrics };
}

function entryPath(cacheRoot: string, number: number): string {
  return join(cacheRoot, RUNS_DIR, `${String(number).padStart(6, '0')}.json`);
}

/**
 * Appends the run under the next free number. The file is written whole under a temporary name and
 * hard-linked into place, which fails if another process took the number first: then the next one.
 */
export async function recordRun(cacheRoot: string, entry: Omit<RunEntry, 'number'>): Promise<RunEntry> {
  await mkdir(join(cacheRoot, RUNS_DIR), { recursive: true });
  let number = lastRunNumber(cacheRoot) + 1;
  for (;;) {
    const path = entryPath(cacheRoot, number);
    const full: RunEntry = { number, ...entry };
    const temp = tempSibling(path);
    await writeFile(temp, `${JSON.stringify(full, null, 2)}\n`);
    try {
      await link(temp, path);
      return full;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      number += 1;
    } finally {
      await rm(temp, { force: true });
    }
  }
}

function runNumbers(cacheRoot: string): number[] {
  let names: string[];
  try {
    names = readdirSync(join(cacheRoot, RUNS_DIR));
  } catch {
    return [];
  }
  return names.flatMap((name) => (/^\d{6,}\.json$/.test(name) ? [Number.parseInt(name, 10)] : [])).sort((a, b) => a - b);
}

function lastRunNumber(cacheRoot: string): number {
  return runNumbers(cacheRoot).at(-1) ?? 0;
}

/** The runs of one pipeline (all pipelines when none is given), oldest first. */
export function listRuns(cacheRoot: string, pipeline?: string): RunEntry[] {
  return runNumbers(cacheRoot).flatMap((number) => {
    try {
      const entry = JSON.parse(readFileSync(entryPath(cacheRoot, number), 'utf8')) as RunEntry;
      return pipeline === undefined || entry.pipeline === pipeline ? [entry] : [];
    } catch {
      return [];
    }
  });
}

/** `3` or `#3` is run 3; `latest` is the last of the list, `latest~1` the one before. */
export function findRun(runs: readonly RunEntry[], reference: string): RunEntry | undefined {
  const back = /^latest(?:~(\d+))?$/.exec(reference);
  if (back) return runs.at(-1 - Number(back[1] ?? 0));
  const number = Number(reference.replace(/^#/, ''));
  return Number.isInteger(number) ? runs.find((run) => run.number === number) : undefined;
}

/** `stage.param` → value, for the params that differ from the run before (flattened one level). */
export function changedParams(previous: RunEntry | undefined, run: RunEntry): Record<string, { before: unknown; after: unknown }> {
  if (!previous) return {};
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  for (const [id, stage] of Object.entries(run.stages)) {
    const before = flattenParams(previous.stages[id]?.params);
    const after = flattenParams(stage.params);
    for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (JSON.stringify(before[name]) !== JSON.stringify(after[name])) changes[`${id}.${name}`] = { before: before[name], after: after[name] };
    }
  }
  return changes;
}

/** `{ a: 1, b: { c: 2 } }` → `{ a: 1, 'b.c': 2 }`; arrays stay whole. */
export function flattenParams(params: unknown, prefix = ''): Record<string, unknown> {
  if (params === null || typeof params !== 'object' || Array.isArray(params)) return prefix ? { [prefix]: params } : {};
  return Object.fromEntries(Object.entries(params).flatMap(([name, value]) => Object.entries(flattenParams(value, prefix ? `${prefix}.${name}` : name))));
}
