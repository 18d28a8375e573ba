import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectGarbage, defineStep, formatFailure, loadPipeline, openCache, runPipeline, type Reporter, type StepRegistry } from '../src/index.js';
import { holdSnapshotLock } from '../src/snapshots.js';
import { testRegistry, writePipeline } from './helpers.js';

/** Writes into ctx.snapshotDir as a training step does after an epoch, then fails while a file `crash` exists (a crash stand-in outside the key). */
const snapshotting = defineStep<Record<string, never>>({
  name: 'snapshotting',
  version: '1',
  params: { type: 'object', additionalProperties: false },
  outputs: ['out'],
  async run(ctx) {
    const found = existsSync(join(ctx.snapshotDir, 'epoch-1.snapshot'));
    mkdirSync(ctx.snapshotDir, { recursive: true });
    writeFileSync(join(ctx.snapshotDir, 'epoch-1.snapshot'), 'state');
    if (existsSync(join(ctx.workdir, 'crash'))) throw new Error('killed');
    return { info: { resumed: found } };
  },
});

const registry: StepRegistry = { ...testRegistry, steps: new Map([...testRegistry.steps, ['snapshotting', { load: async () => snapshotting }]]) };
const quiet: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn() {} };

const PIPELINE = 'stages:\n  train: { uses: snapshotting }\n';

async function run(file: string) {
  const loaded = await loadPipeline(file, { registry, env: {} });
  if (!loaded.ok) throw new Error(loaded.error.map((f) => formatFailure(f)).join('\n'));
  const cache = openCache(join(dirname(file), 'cache'), () => {});
  try {
    return await runPipeline(loaded.value, { cache, reporter: quiet, jobs: 1, force: 'all' });
  } finally {
    await cache.close();
  }
}

const snapshotsOf = (file: string) => (existsSync(join(dirname(file), 'cache', 'snapshots')) ? readdirSync(join(dirname(file), 'cache', 'snapshots')) : []);

describe('ctx.snapshotDir', () => {
  it('survives a failed run for the next run of the same key, and is removed once the stage succeeds', async () => {
    const file = writePipeline(PIPELINE);
    writeFileSync(join(dirname(file), 'crash'), '');
    const failed = await run(file);
    expect(failed.stages[0]!.status).toBe('failed');
    expect(snapshotsOf(file)).toEqual([failed.stages[0]!.key]);

    rmSync(join(dirname(file), 'crash'));
    const resumed = await run(file);
    expect(resumed.stages[0]!.status).toBe('ran');
    expect(resumed.stages[0]!.record!.info).toEqual({ resumed: true });
    expect(snapshotsOf(file)).toEqual([]);
  });

  it('gc removes snapshots no live process runs the key of, and keeps those one does', async () => {
    const file = writePipeline(PIPELINE);
    writeFileSync(join(dirname(file), 'crash'), '');
    await run(file);
    const root = join(dirname(file), 'cache');
    const [stale] = snapshotsOf(file);
    const running = 'f'.repeat(64);
    mkdirSync(join(root, 'snapshots', running), { recursive: true });
    writeFileSync(join(root, 'snapshots', running, 'epoch-1.snapshot'), 'state');
    const release = holdSnapshotLock(root, running);
    try {
      const cache = openCache(root, () => {});
      const dry = await collectGarbage(cache, [], { keepDays: 30, dryRun: true });
      expect(dry.removedSnapshots).toBe(1);
      expect(snapshotsOf(file).sort()).toEqual([stale, running].sort());
      const report = await collectGarbage(cache, [], { keepDays: 30, dryRun: false }).finally(() => cache.close());
      expect(report.removedSnapshots).toBe(1);
      expect(report.freedBytes).toBeGreaterThanOrEqual('state'.length);
      expect(snapshotsOf(file)).toEqual([running]);
    } finally {
      release();
    }
  });
});
