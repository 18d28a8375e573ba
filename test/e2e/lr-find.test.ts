import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, Rig } from './rig.js';

/**
 * mnist-tiny with an LR range test on the unfrozen model, beside fine-tune, as the fine-tune recipe has it,
 * and one for the head that a train-head stage wires. (33 and 41 iterations over the default range
 * suggest the same lr on these 84 images: 41's grid holds 33's decades.)
 */
const findStages = (headIterations = 33) => `
  find:
    uses: lr-find
    inputs: { model: unfreeze.model, dataset: prep.dataset }
    with: { start_lr: 1.0e-6, end_lr: 10, iterations: 50, suggest: valley }
  head_find:
    uses: lr-find
    inputs: { features: features.features }
    with: { layers: [{ dense: 32, activation: relu }], iterations: ${headIterations} }
  head_at_lr:
    uses: train-head
    inputs: { features: features.features, lr: head_find.lr }
    with: { layers: [{ dense: 8 }], epochs: 1 }
`;
/** 12 images a class keep it quick: 84 training images, 2 batches a pass. */
const STAGES = ['--stage', 'find', '--stage', 'head_find', '--stage', 'head_at_lr', '--set', 'params.per_class=12'];

function writePipeline(rig: Rig, headIterations?: number): void {
  rig.write('headstart.yaml', readFileSync(join(REPO, 'pipelines/mnist-tiny.yaml'), 'utf8') + findStages(headIterations));
}

function tinyProjectWithFind(): Rig {
  const rig = new Rig();
  writePipeline(rig);
  return rig;
}

function cacheObject(rig: Rig, hash: string): Buffer {
  return readFileSync(join(rig.dir, '.headstart/cache/objects', hash.slice(0, 2), hash.slice(2)));
}

/** The files of an output artifact, by path, read from the cache. */
function artifactFiles(rig: Rig, treeHash: string): Map<string, { hash: string; bytes: Buffer }> {
  const manifest = JSON.parse(cacheObject(rig, treeHash).toString('utf8')) as { entries: { path: string; hash: string }[] };
  return new Map(manifest.entries.map((entry) => [entry.path, { hash: entry.hash, bytes: cacheObject(rig, entry.hash) }]));
}

describe('the lr-find step on mnist-tiny', () => {
  it('writes lr.json (the suggestion alone), curve.json and lr.svg, records suggested_lr, leaves its input model untouched, and gives the same bytes from a clean cache on any thread count', async () => {
    const first = tinyProjectWithFind();
    const run = await first.runJson(...STAGES, '--workers', '1');
    expect(run.exitCode, run.stderr).toBe(0);
    expect([run.statuses['find'], run.statuses['head_find']]).toEqual(['ran', 'ran']);
    const lock = first.lockfile() as unknown as { stages: Record<string, { metrics?: Record<string, number>; outputs: Record<string, { hash: string }> }> };
    const files = artifactFiles(first, lock.stages['find']!.outputs['lr']!.hash);
    expect([...files.keys()]).toEqual(['lr.json']);
    const lr = JSON.parse(files.get('lr.json')!.bytes.toString('utf8')) as { lr: number };
    expect(Object.keys(lr)).toEqual(['lr']);
    const curveFiles = artifactFiles(first, lock.stages['find']!.outputs['curve']!.hash);
    expect([...curveFiles.keys()].sort()).toEqual(['curve.json', 'lr.svg']);
    const curve = JSON.parse(curveFiles.get('curve.json')!.bytes.toString('utf8')) as { suggest: string; start_lr: number; end_lr: number; iterations: number; curve: { lr: number; loss: number; smoothed: number }[] };
    expect(curve).toMatchObject({ suggest: 'valley', start_lr: 1e-6, end_lr: 10, iterations: 50 });
    expect(curve.curve.length).toBeGreaterThan(10);
    expect(Object.keys(curve.curve[0]!)).toEqual(['lr', 'loss', 'smoothed']);
    expect(lr.lr).toBeGreaterThan(1e-6);
    expect(lr.lr).toBeLessThan(10);
    expect(lock.stages['find']!.metrics).toEqual({ suggested_lr: lr.lr });
    expect(lock.stages['head_find']!.metrics!['suggested_lr']).toBeGreaterThan(0);
    expect(curveFiles.get('lr.svg')!.bytes.toString('utf8')).toMatch(/^<svg/);

    // the unfrozen model lr-find trained a copy of: every file it was given still has its recorded hash
    const modelTree = lock.stages['unfreeze']!.outputs['model']!.hash;
    for (const [path, file] of artifactFiles(first, modelTree)) {
      const onDisk = readFileSync(join(first.dir, '.headstart/cache/trees', modelTree, path));
      expect(createHash('sha256').update(onDisk).digest('hex'), path).toBe(file.hash);
    }

    const cached = await first.runJson(...STAGES);
    expect([cached.statuses['find'], cached.statuses['head_find'], cached.statuses['head_at_lr']]).toEqual(['cached', 'cached', 'cached']);

    // another range test that suggests the same lr: the stage wiring it stays cached
    writePipeline(first, 41);
    const rerun = await first.runJson(...STAGES);
    expect(rerun.exitCode, rerun.stderr).toBe(0);
    expect([rerun.statuses['head_find'], rerun.statuses['head_at_lr']]).toEqual(['ran', 'cached']);
    const after = (first.lockfile() as unknown as typeof lock).stages['head_find']!;
    expect(after.metrics).toEqual(lock.stages['head_find']!.metrics);
    expect(after.outputs['curve']!.hash).not.toBe(lock.stages['head_find']!.outputs['curve']!.hash);

    const second = tinyProjectWithFind();
    const again = await second.runJson(...STAGES, '--workers', '2');
    expect(again.exitCode, again.stderr).toBe(0);
    const lrHashes = (rig: Rig) => [...['find', 'head_find'].map((stage) => rig.lockfile().stages[stage]!.outputs['lr']!.hash), rig.lockfile().stages['find']!.outputs['curve']!.hash];
    expect(lrHashes(second)).toEqual(lrHashes(first));
  }, 180_000);
});
