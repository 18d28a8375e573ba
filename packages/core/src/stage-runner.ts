import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ingestDirectory, materialize, verifyArtifact } from './artifacts.js';
import type { ArtifactRef, StageKey, StageKeyDocument } from './cache-key.js';
import type { Cache } from './cache.js';
import type { RunRecord } from './run-record.js';
import { discardSnapshot, holdSnapshotLock, snapshotDirFor } from './snapshots.js';
import { redactSecrets, runtimeParams } from './secrets.js';
import type { AnyStep, StepContext, StepSettings } from './step.js';

/**
 * One stage run as a plain, serialisable job: everything needed to run it on this machine or another
 * that shares the object store. Deciding *what* must run happens elsewhere (the executor's planning).
 */
export interface StageJob {
  key: StageKey;
  stage: string;
  /** The stage's `uses:`, resolved again by whoever runs the job. */
  uses: string;
  /** The pipeline file's directory: relative paths in params resolve against it. */
  workdir: string;
  keyDocument: StageKeyDocument;
  /** Input artifacts by input name (their hashes are also in the key document). */
  inputs: Record<string, ArtifactRef>;
  outputs: readonly string[];
  /** Recompute even where a cache holds the key (`--force`): a worker must not answer from the remote. */
  force?: boolean;
}

export interface StageHooks {
  signal: AbortSignal;
  log(level: 'info' | 'warn', message: string): void;
  progress(done: number, total?: number, unit?: string): void;
}

/** What the machine running a job adds to it: neither is part of the key. */
export interface StageJobRuntime {
  /** The values of the `${env.NAME}` the params name (those the stage was loaded with, or a queue worker's own environment). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The step's `ctx.settings` on this machine. */
  settings?: StepSettings;
}

/**
 * Runs the job's step with `${env.NAME}` in its params filled in from `runtime.env`, those values masked in
 * its log lines and failure message.
 */
export async function runStageJob(job: StageJob, step: AnyStep, cache: Cache, hooks: StageHooks, runtime: StageJobRuntime = {}): Promise<RunRecord> {
  const { params, secrets } = runtimeParams(job.keyDocument, runtime.env ?? {});
  try {
    return await runInScratch(job, step, cache, { ...hooks, log: (level, message) => hooks.log(level, redactSecrets(message, secrets)) }, params, runtime.settings ?? {});
  } catch (error) {
    // Failure messages travel on (Redis, the run log, the terminal): the secrets stay here.
    if (error instanceof Error) error.message = redactSecrets(error.message, secrets);
    throw error;
  }
}

/**
 * Runs the step in a private directory under the cache, moves its outputs into the object store, and
 * writes the run record last: a crash at any point leaves nothing a later run would trust.
 */
async function runInScratch(job: StageJob, step: AnyStep, cache: Cache, hooks: StageHooks, params: Record<string, unknown>, settings: StepSettings): Promise<RunRecord> {
  const scratch = await cache.store.tempDir(job.stage);
  const snapshotDir = snapshotDirFor(cache.root, job.key);
  const releaseSnapshots = holdSnapshotLock(cache.root, job.key);
  try {
    // Forcing asks for a clean run, not a resumed one (a retried forced queue job starts over too).
    if (job.force && (await discardSnapshot(cache.root, job.key))) hooks.log('info', 'discarding the training snapshot of a previous run (--force)');
    const inputs: Record<string, string> = {};
    for (const [name, ref] of Object.entries(job.inputs)) {
      if (!(await verifyArtifact(ref, cache.store))) throw new Error(`input ${name} (${ref.hash.slice(0, 12)}) is missing from the cache`);
      inputs[name] = await materialize(ref, cache.store);
    }
    const outputs: Record<string, string> = {};
    for (const name of job.outputs) {
      outputs[name] = join(scratch, 'out', name);
      await mkdir(outputs[name], { recursive: true });
    }
    await mkdir(join(scratch, 'tmp'));
    const context: StepContext = {
      stage: job.stage,
      params,
      inputs,
      outputs,
      workdir: job.workdir,
      tmpdir: join(scratch, 'tmp'),
      cacheDir: cache.root,
      snapshotDir,
      seed: job.keyDocument.seed,
      signal: hooks.signal,
      log: { info: (message) => hooks.log('info', message), warn: (message) => hooks.log('warn', message) },
      settings,
      progress: hooks.progress,
    };
    const started = performance.now();
    const result = (await step.run(context)) ?? {};
    hooks.signal.throwIfAborted();
    const durationMs = Math.round(performance.now() - started);
    const refs: Record<string, ArtifactRef> = {};
    for (const name of job.outputs) refs[name] = await ingestDirectory(outputs[name]!, cache.store, cache.hasher);
    const record: RunRecord = {
      recordVersion: 1,
      key: job.key,
      stage: job.stage,
      keyDocument: job.keyDocument,
      outputs: refs,
      durationMs,
      createdAt: new Date().toISOString(),
      ...(result.metrics ? { metrics: result.metrics } : {}),
      ...(result.info ? { info: result.info } : {}),
      ...(result.failedChecks?.length ? { failedChecks: result.failedChecks } : {}),
    };
    await cache.store.writeRecord(record);
    // Only once the record is written: a crash before it leaves the snapshots for the next run to resume from.
    await rm(snapshotDir, { recursive: true, force: true });
    return record;
  } finally {
    releaseSnapshots();
    await rm(scratch, { recursive: true, force: true });
  }
}
