import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineStep, formatFailure, loadPipeline, openCache, runPipeline, type Reporter, type StepRegistry, type StepSettings } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

/** Reports the settings it was given, as an ML step reads its backend and thread count. */
const settingsStep = defineStep<Record<string, never>>({
  name: 'settings',
  version: '1',
  params: { type: 'object', additionalProperties: false },
  outputs: ['out'],
  async run(ctx) {
    return { info: { backend: ctx.settings.backend ?? 'none', threads: ctx.settings.threads ?? 0 } };
  },
});

const registry: StepRegistry = { ...testRegistry, steps: new Map([...testRegistry.steps, ['settings', { load: async () => settingsStep }]]) };
const quiet: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn() {} };

async function infoWith(settings: StepSettings | undefined) {
  const file = writePipeline('stages:\n  probe: { uses: settings }\n');
  const loaded = await loadPipeline(file, { registry, env: {} });
  if (!loaded.ok) throw new Error(loaded.error.map((f) => formatFailure(f)).join('\n'));
  const cache = openCache(join(dirname(file), 'cache'), () => {});
  const summary = await runPipeline(loaded.value, { cache, reporter: quiet, jobs: 1, ...(settings ? { settings } : {}) });
  await cache.close();
  return summary.stages[0]!.record!.info;
}

describe('step settings', () => {
  it('reach the step as ctx.settings from the run options, not from the environment', async () => {
    expect(await infoWith({ backend: 'wasm', threads: 3 })).toEqual({ backend: 'wasm', threads: 3 });
    process.env['HEADSTART_BACKEND'] = 'cpu';
    try {
      expect(await infoWith(undefined)).toEqual({ backend: 'none', threads: 0 });
    } finally {
      delete process.env['HEADSTART_BACKEND'];
    }
  });
});
