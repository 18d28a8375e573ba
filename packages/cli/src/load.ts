import { dirname, resolve } from 'node:path';
import { cacheDirFor, closestMatch, exitCodeOf, formatFailure, loadPipeline, openCache, selectStages, type Cache, type Failure, type Pipeline } from '@headstart/core';
import { builtinSteps } from '@headstart/steps';

export interface PipelineFlags {
  set?: string[];
  cacheDir?: string;
}

export type Loaded = { ok: true; pipeline: Pipeline } | { ok: false; exitCode: number };

/** Loads and validates the pipeline; user errors are printed one per line. */
export async function loadForCommand(path: string, flags: PipelineFlags): Promise<Loaded> {
  const cacheDir = cacheDirFor(dirname(resolve(path)), flags.cacheDir);
  const result = await loadPipeline(path, { registry: builtinSteps, overrides: flags.set ?? [], cacheDir });
  if (result.ok) return { ok: true, pipeline: result.value };
  return { ok: false, exitCode: printFailures(result.error) };
}

export function printFailures(failures: readonly Failure[]): number {
  for (const failure of failures) console.error(formatFailure(failure));
  return exitCodeOf(failures);
}

export function openPipelineCache(pipeline: Pipeline, flags: PipelineFlags, warn: (message: string) => void): Cache {
  return openCache(cacheDirFor(pipeline.dir, flags.cacheDir), warn);
}

/** `--stage`/`--force` must name stages that exist (a stage id, or a matrix stage's name or values: see selectStages). */
export function unknownTargets(pipeline: Pipeline, ids: readonly string[]): Failure[] {
  const names = new Set([...pipeline.stages.values()].map((stage) => stage.name));
  return ids
    .filter((id) => selectStages(pipeline, id).length === 0)
    .map((stage) => ({ reason: 'unknown-target' as const, stage, suggestion: closestMatch(stage, [...names, ...pipeline.stages.keys()]) }));
}
