import type { RunRecord, StageJob } from '@headstart/core';

/** What a coordinator enqueues: the plain stage job (its key document carries the step's code fingerprint). */
export interface QueuedStage {
  job: StageJob;
}

/** What a worker returns: the record whose objects it left in the remote cache. */
export interface StageResult {
  record: RunRecord;
  worker: string;
  /** False when the result was already in the remote cache and nothing ran. */
  ran: boolean;
}

/** Messages from the stage's child process to its worker. */
export type ChildMessage =
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'done'; record: RunRecord }
  | { type: 'failed'; message: string; refused: boolean };

/** What the worker sends its child: the job and the local cache to run it against. */
export interface ChildRequest {
  job: StageJob;
  cacheRoot: string;
}
