import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { historyMetrics, type History } from './training.js';

/** A training step's metrics read back from the `history.json` of its `history` output (see StepDefinition.summarize). */
export async function metricsFromHistory(outputs: Readonly<Record<string, string>>): Promise<{ metrics: Record<string, number> }> {
  const history = JSON.parse(await readFile(join(outputs['history']!, 'history.json'), 'utf8')) as History;
  return { metrics: historyMetrics(history) };
}
