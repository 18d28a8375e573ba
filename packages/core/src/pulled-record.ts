import { materialize } from './artifacts.js';
import type { Cache } from './cache.js';
import type { RunRecord } from './run-record.js';
import type { Stage } from './pipeline.js';

/**
 * Makes a result pulled without authentication (no signing key) trustworthy. All of it is already checked
 * (its key document hashes to its key, its objects to their hashes) but its numbers. Those are re-derived from
 * the verified outputs by the step's `summarize`, or dropped where the step has none (a failed check is
 * kept: dropping it would pass a gate). The record is rewritten locally, so this happens once. Outputs the
 * step cannot summarize (a metrics file missing) make the result unusable: it is removed, and undefined
 * returned, so that the stage runs here instead of failing on every run.
 */
export async function adoptPulledRecord(record: RunRecord, stage: Stage, cache: Cache, warn: (message: string) => void): Promise<RunRecord | undefined> {
  const { step } = stage;
  const checked: RunRecord = { ...record };
  delete checked.unverifiedMetrics;
  delete checked.metrics;
  delete checked.failedChecks;
  let summary: Pick<RunRecord, 'metrics' | 'failedChecks'> = record.failedChecks ? { failedChecks: record.failedChecks } : {};
  if (step.summarize) {
    const outputs: Record<string, string> = {};
    for (const [name, ref] of Object.entries(record.outputs)) outputs[name] = await materialize(ref, cache.store);
    let derived: Awaited<ReturnType<typeof step.summarize>>;
    try {
      derived = await step.summarize({ params: stage.params, outputs });
    } catch (error) {
      await cache.store.removeRecord(record.key);
      warn(`${stage.id}: the pulled result cannot be summarized (${error instanceof Error ? error.message : String(error)}); running the stage here`);
      return undefined;
    }
    summary = { ...(derived.metrics ? { metrics: derived.metrics } : {}), ...(derived.failedChecks?.length ? { failedChecks: derived.failedChecks } : {}) };
  }
  const adopted: RunRecord = { ...checked, ...summary };
  await cache.store.writeRecord(adopted);
  return adopted;
}
