import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineStep, formatFailure, loadPipeline, openCache, runPipeline, type Reporter, type StepRegistry } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

let runs = 0;

/** Writes its data but no metrics.json, which its summarize reads: outputs a pulled record cannot be summarized from. */
const scoredStep = defineStep<Record<string, never>>({
  name: 'scored',
  version: '1',
  params: { type: 'object', additionalProperties: false, properties: {} },
  outputs: ['out'],
  async run(ctx) {
    runs++;
    writeFileSync(join(ctx.outputs['out']!, 'data.txt'), 'data');
  },
  async summarize(ctx) {
    return { metrics: JSON.parse(readFileSync(join(ctx.outputs['out']!, 'metrics.json'), 'utf8')) as Record<string, number> };
  },
});

const registry: StepRegistry = { ...testRegistry, steps: new Map([...testRegistry.steps, ['scored', { load: async () => scoredStep }]]) };

describe('a pulled unsigned record whose outputs cannot be summarized', () => {
  it('is removed with a warning and the stage runs here, instead of failing on every run', async () => {
    const file = writePipeline('stages:\n  s: { uses: scored }\n');
    const loaded = await loadPipeline(file, { registry, env: {} });
    if (!loaded.ok) throw new Error(loaded.error.map((f) => formatFailure(f)).join('\n'));
    const cache = openCache(join(dirname(file), 'cache'), () => {});
    const warnings: string[] = [];
    const reporter: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn: (message) => warnings.push(message) };
    const run = async () => (await runPipeline(loaded.value, { cache, reporter, jobs: 1 })).stages[0]!;

    const first = await run();
    expect([first.status, runs]).toEqual(['ran', 1]);
    // As an unsigned remote's pull leaves it: outputs verified, metrics not yet re-derived.
    await cache.store.writeRecord({ ...first.record!, unverifiedMetrics: true });

    const second = await run();
    expect([second.status, runs]).toEqual(['ran', 2]);
    expect(warnings).toEqual([expect.stringMatching(/^s: the pulled result cannot be summarized \(ENOENT: .*metrics\.json'\); running the stage here$/)]);
    expect((await cache.store.readRecord(first.key!))?.unverifiedMetrics).toBeUndefined();
    expect([(await run()).status, runs]).toEqual(['cached', 2]);
  });
});
