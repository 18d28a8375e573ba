import { realpathSync } from 'node:fs';
import { fileAtRevision, lockfilePath, maxDropViolations, parseLockfile, readLockfile, type Failure, type Lockfile, type Pipeline, type RevisionFile } from '@headstart/core';

export type Baseline = { ok: true; lockfile: Lockfile } | Extract<RevisionFile, { ok: false }>;

/** A lock file as committed at `revision`. */
export async function baselineLockfile(path: string, revision: string): Promise<Baseline> {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    real = path;
  }
  const file = await fileAtRevision(real, revision);
  return file.ok ? { ok: true, lockfile: parseLockfile(file.text) } : file;
}

/** Every `max_drop` the current lock file breaks against the baseline, as failed gates. */
export async function checkMaxDrop(pipeline: Pipeline, revision: string): Promise<Failure[]> {
  const guarded = pipeline.order.some((id) => Object.keys((pipeline.stages.get(id)!.params['max_drop'] as object | undefined) ?? {}).length > 0);
  if (!guarded) return [];
  const baseline = await baselineLockfile(lockfilePath(pipeline), revision);
  if (!baseline.ok) {
    console.error(`warning: max_drop not checked: ${baseline.why}`);
    return [];
  }
  const { violations, notes } = maxDropViolations(pipeline, readLockfile(lockfilePath(pipeline)), baseline.lockfile, revision);
  for (const note of notes) console.error(`warning: ${note}`);
  return violations.map((detail) => ({ reason: 'gate-failed', detail }));
}
