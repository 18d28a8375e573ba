import { materialize } from './artifacts.js';
import type { Cache } from './cache.js';
import type { RunRecord } from './run-record.js';
import type { Stage } from './pipeline.js';

/**
 * Makes a result pulled without authentication (no signing key) trustworthy. All of it is already checked
 * (its key document hashes to its key, its objects to their hashes) but its numbers. Those are re-derived from
 * the verified outputs by the step's `summarize`, or dropped where the step has none (a failed check is
 * kept: dropping it would pass a gate). The record is rewritten locally, so this happens once.
 */
export async function adoptPulledRecord(record: RunRecord, stage: Stage, cache: Cache): Promise<RunRecord> {
  const { step } = stage;
  const checked: RunRecord = { ...record };
  delete checked.unverifiedMetrics;
  delete checked.metrics;
  delete checked.failedChecks;
  let summary: Pick<RunRecord, 'metrics' | 'failedChecks'> = record.failedChecks ? { failedChecks: record.failedChecks } : {};
  if (step.summarize) {
    const outputs: Record<string, string> = {};
    for (const [name, ref] of Object.entries(record.outputs)) outputs[name] = await materialize(ref, cache.store);
    const derived = await step.summarize({ params: stage.params, outputs });
    summary = { ...(derived.metrics ? { metrics: derived.metrics } : {}), ...(derived.failedChecks?.length ? { failedChecks: derived.failedChecks } : {}) };
  }
  const adopted: RunRecord = { ...checked, ...summary };
  await cache.store.writeRecord(adopted);
  return adopted;
}
