import type { ArtifactRef, StageKey, StageKeyDocument } from './cache-key.js';

/** What one execution of a stage produced: stored under its key, it is what makes a cache hit. */
export interface RunRecord {
  recordVersion: 1;
  key: StageKey;
  /** The stage id that produced it (another pipeline may reuse the result under another id). */
  stage: string;
  keyDocument: StageKeyDocument;
  outputs: Record<string, ArtifactRef>;
  durationMs: number;
  createdAt: string;
  metrics?: Record<string, number>;
  info?: Record<string, string | number | boolean>;
  failedChecks?: string[];
  /**
   * Set on a result pulled from a remote cache that does not authenticate its records (no signing key):
   * its metrics and failed checks are not trusted until re-derived from its outputs (see pulled-record.ts).
   */
  unverifiedMetrics?: true;
}

export function isRunRecord(value: unknown, key: string): value is RunRecord {
  const record = value as Partial<RunRecord> | null;
  return (
    record !== null &&
    typeof record === 'object' &&
    record.recordVersion === 1 &&
    record.key === key &&
    typeof record.outputs === 'object' &&
    record.outputs !== null &&
    Object.values(record.outputs).every((output) => typeof output?.hash === 'string')
  );
}
