import type { Failure, RunRecord, StageJob, StepSettings } from '@headstart/core';

/** What a coordinator enqueues: the plain stage job (its key document carries the step's code fingerprint). */
export interface QueuedStage {
  job: StageJob;
}

/**
 * What a worker returns: the record whose objects it left in the remote cache, or the stage's failure as a
 * value (a job that completes), so that a user error stays one (exit 2) on the coordinator.
 */
export type StageResult =
  | {
      ok: true;
      record: RunRecord;
      worker: string;
      /** False when the result was already in the remote cache and nothing ran. */
      ran: boolean;
    }
  | { ok: false; failure: Failure; worker: string };

/** Messages from the stage's child process to its worker. */
export type ChildMessage =
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'done'; record: RunRecord }
  | { type: 'failed'; failure: Failure };

/** What the worker sends its child: the job, the local cache to run it against, and this worker's step settings. */
export interface ChildRequest {
  job: StageJob;
  cacheRoot: string;
  settings: StepSettings;
}
