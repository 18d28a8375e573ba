import { closestMatch, lockfilePath, materialize, readLockfile, type Cache, type Failure, type LockEntry, type Pipeline } from '@headstart/core';

export type StageOutput = { ok: true; dir: string; entry: LockEntry } | { ok: false; failure: Failure & { reason: 'no-stage-output' } };

/**
 * The directory holding what a stage last produced, as `headstart.lock` records it, materialized from
 * the local cache (read-only). The failure says what to do when the lock or the cache lacks it.
 */
export async function stageOutputDir(pipeline: Pipeline, cache: Cache, stageId: string, output: string): Promise<StageOutput> {
  const missing = (detail: string): StageOutput => ({ ok: false, failure: { reason: 'no-stage-output', stage: stageId, output, detail } });
  const lockPath = lockfilePath(pipeline);
  const stages = readLockfile(lockPath).stages;
  const entry = stages[stageId];
  if (!entry) {
    if (!pipeline.stages.has(stageId)) {
      const suggestion = closestMatch(stageId, pipeline.stages.keys());
      return missing(`${pipeline.file.path}: no stage "${stageId}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`);
    }
    return missing(`${lockPath}: stage "${stageId}" has not run yet: run \`headstart run ${pipeline.file.path} --stage ${stageId}\``);
  }
  const ref = entry.outputs[output];
  if (!ref) return missing(`stage "${stageId}" has no output "${output}" (it has: ${Object.keys(entry.outputs).join(', ') || 'none'})`);
  try {
    return { ok: true, dir: await materialize(ref, cache.store), entry };
  } catch {
    return missing(`stage "${stageId}"'s ${output} is not in the local cache (${cache.root}): run \`headstart run ${pipeline.file.path} --stage ${stageId}\``);
  }
}

/** The stages of the pipeline that use `step`, in run order (e.g. every evaluate stage). */
export function stagesOfStep(pipeline: Pipeline, step: string): string[] {
  return pipeline.order.filter((id) => pipeline.stages.get(id)?.uses === step);
}
