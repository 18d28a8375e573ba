import { existsSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
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

async function run(file: string, options: { force?: boolean; reporter?: Reporter } = {}) {
  const loaded = await loadPipeline(file, { registry, env: {} });
  if (!loaded.ok) throw new Error(loaded.error.map((f) => formatFailure(f)).join('\n'));
  const cache = openCache(join(dirname(file), 'cache'), () => {});
  try {
    return await runPipeline(loaded.value, { cache, reporter: options.reporter ?? quiet, jobs: 1, ...(options.force ? { force: 'all' as const } : {}) });
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

  it('is discarded by a forced run, which starts clean and says so; a forced run without one says nothing', async () => {
    const file = writePipeline(PIPELINE);
    writeFileSync(join(dirname(file), 'crash'), '');
    await run(file);
    rmSync(join(dirname(file), 'crash'));
    const logged: string[] = [];
    const reporter: Reporter = { ...quiet, log: (_stage, _level, message) => logged.push(message) };
    const forced = await run(file, { force: true, reporter });
    expect(forced.stages[0]!.record!.info).toEqual({ resumed: false });
    expect(logged).toEqual(['discarding the training snapshot of a previous run (--force)']);
    expect(snapshotsOf(file)).toEqual([]);

    logged.length = 0;
    expect((await run(file, { force: true, reporter })).stages[0]!.status).toBe('ran');
    expect(logged).toEqual([]);
  });

  it('gc keeps a killed run\'s recent snapshot, removes one nothing wrote in for longer than --keep-days, and keeps a running one however old', async () => {
    const file = writePipeline(PIPELINE);
    writeFileSync(join(dirname(file), 'crash'), '');
    await run(file);
    const root = join(dirname(file), 'cache');
    const [killed] = snapshotsOf(file);
    const running = 'f'.repeat(64);
    mkdirSync(join(root, 'snapshots', running), { recursive: true });
    writeFileSync(join(root, 'snapshots', running, 'epoch-1.snapshot'), 'state');
    const release = holdSnapshotLock(root, running);
    const gc = async (keepDays: number, dryRun = false) => {
      const cache = openCache(root, () => {});
      return await collectGarbage(cache, [], { keepDays, dryRun }).finally(() => cache.close());
    };
    try {
      // Fresh: the crash just happened, and even --keep-days 0 leaves the resume point an hour.
      expect((await gc(0)).removedSnapshots).toBe(0);
      expect(snapshotsOf(file).sort()).toEqual([killed, running].sort());

      ageSnapshot(root, killed!, 8);
      ageSnapshot(root, running, 8);
      expect((await gc(30)).removedSnapshots).toBe(0);
      const dry = await gc(7, true);
      expect(dry.removedSnapshots).toBe(1);
      expect(snapshotsOf(file).sort()).toEqual([killed, running].sort());
      const report = await gc(7);
      expect(report.removedSnapshots).toBe(1);
      expect(report.freedBytes).toBeGreaterThanOrEqual('state'.length);
      expect(snapshotsOf(file)).toEqual([running]);
    } finally {
      release();
    }
  });
});

/** Sets the mtimes of a snapshot folder and its files `days` back, as if the killed run were that old. */
function ageSnapshot(root: string, key: string, days: number): void {
  const then = new Date(Date.now() - days * 24 * 60 * 60 * 1000);
  const dir = join(root, 'snapshots', key);
  for (const name of readdirSync(dir)) utimesSync(join(dir, name), then, then);
  utimesSync(dir, then, then);
}
