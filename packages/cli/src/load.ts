import { dirname, resolve } from 'node:path';
import { cacheDirFor, closestMatch, loadPipeline, openCache, selectStages, type Cache, type Failure, type Pipeline, type Result } from '@headstart/core';
import { builtinSteps } from '@headstart/steps';

export interface PipelineFlags {
  set?: string[];
  cacheDir?: string;
}

/** Loads and validates the pipeline; its user errors come back for `main` to print. */
export async function loadForCommand(path: string, flags: PipelineFlags): Promise<Result<Pipeline, Failure[]>> {
  const cacheDir = cacheDirFor(dirname(resolve(path)), flags.cacheDir);
  return loadPipeline(path, { registry: builtinSteps, overrides: flags.set ?? [], cacheDir });
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
