import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, Rig } from './rig.js';

const STAGES = ['data', 'prep', 'features', 'head', 'unfreeze', 'finetune', 'eval'];

function tinyProject(): Rig {
  const rig = new Rig();
  copyFileSync(join(REPO, 'pipelines/mnist-tiny.yaml'), join(rig.dir, 'headstart.yaml'));
  return rig;
}

/** A model output's weights, read from the directory the cache materialized for its consumer. */
function modelWeights(rig: Rig, stage: string): Float32Array {
  const hash = rig.lockfile().stages[stage]!.outputs['model']!.hash;
  const bytes = readFileSync(join(rig.dir, '.headstart/cache/trees', hash, 'weights.bin'));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

describe('the transfer-learning steps on mnist-tiny', () => {
  it('runs end to end, then is fully cached; a head param re-runs the head and what follows only', async () => {
    const rig = tinyProject();
    const first = await rig.runJson();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(Object.values(first.statuses)).toEqual(STAGES.map(() => 'ran'));
    const lock = rig.lockfile() as unknown as { stages: Record<string, { info?: Record<string, unknown>; metrics?: Record<string, number> }> };
    expect(lock.stages['features']!.info!['backend']).toBe('wasm');
    expect(lock.stages['eval']!.metrics!['accuracy']).toBeGreaterThan(0.5);

    const second = await rig.runJson();
    expect(Object.values(second.statuses)).toEqual(STAGES.map(() => 'cached'));

    const changed = await rig.runJson('--set', 'head.lr=0.01');
    expect(changed.statuses).toEqual({ data: 'cached', prep: 'cached', features: 'cached', head: 'ran', unfreeze: 'ran', finetune: 'ran', eval: 'ran' });
  });

  it('fail_under above the achieved accuracy exits 3 naming the metric', async () => {
    const rig = tinyProject();
    const result = await rig.run('run', '--set', 'eval.fail_under.accuracy=0.999');
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toMatch(/^stage "eval": accuracy 0\.\d{4} on the test split is below fail_under 0\.999$/m);
  });

  it('fine-tuning on cached boundary activations gives the weights training on images gives', async () => {
    const cached = tinyProject();
    const direct = tinyProject();
    expect((await cached.run('run', '--set', 'finetune.epochs=1')).exitCode).toBe(0);
    expect((await direct.run('run', '--set', 'finetune.epochs=1', '--set', 'finetune.cache_boundary=false')).exitCode).toBe(0);
    const [a, b] = [modelWeights(cached, 'finetune'), modelWeights(direct, 'finetune')];
    expect(a.length).toBe(b.length);
    const before = modelWeights(cached, 'unfreeze');
    let maxDifference = 0;
    let changedByTraining = 0;
    for (let i = 0; i < a.length; i++) {
      maxDifference = Math.max(maxDifference, Math.abs(a[i]! - b[i]!));
      changedByTraining = Math.max(changedByTraining, Math.abs(a[i]! - before[i]!));
    }
    expect(changedByTraining).toBeGreaterThan(1e-4);
    expect(maxDifference).toBeLessThan(1e-4);
  });

  it('feature extraction on two threads writes exactly what one thread writes', async () => {
    const [one, two] = [tinyProject(), tinyProject()];
    const single = await one.run('run', '--stage', 'features', '--workers', '1');
    const parallel = await two.run('run', '--stage', 'features', '--workers', '2');
    expect([single.exitCode, parallel.exitCode]).toEqual([0, 0]);
    expect(parallel.stdout).toContain('× 2 threads');
    expect(single.stdout).not.toMatch(/× \d+ threads/);
    const featuresHash = (rig: Rig) => rig.lockfile().stages['features']!.outputs['features']!.hash;
    expect(featuresHash(two)).toBe(featuresHash(one));
  });

  it('evaluation on two threads reports exactly what one thread reports', async () => {
    const [one, two] = [tinyProject(), tinyProject()];
    const args = ['run', '--set', 'params.per_class=60', '--set', 'eval.batch_size=8'];
    expect((await one.run(...args, '--workers', '1')).exitCode).toBe(0);
    expect((await two.run(...args, '--workers', '2')).exitCode).toBe(0);
    const lock = (rig: Rig) => rig.lockfile() as unknown as { stages: Record<string, { outputs: Record<string, { hash: string }>; info: Record<string, unknown> }> };
    expect([lock(one).stages['eval']!.info['threads'], lock(two).stages['eval']!.info['threads']]).toEqual([1, 2]);
    expect(lock(two).stages['eval']!.outputs['metrics']!.hash).toBe(lock(one).stages['eval']!.outputs['metrics']!.hash);
  });

  it('fine-tuning on two threads (boundary activations and training) writes exactly what one thread writes', async () => {
    const rig = tinyProject();
    const args = ['run', '--stage', 'finetune', '--set', 'params.per_class=80', '--set', 'finetune.epochs=1'];
    const two = await rig.run(...args, '--workers', '2');
    expect(two.exitCode, two.stderr).toBe(0);
    expect(two.stdout).toMatch(/cached the frozen part's output .* in [\d.]+ s \(2 threads\)/);
    expect(two.stdout).toContain('training on 2 threads');
    const trained = rig.lockfile().stages['finetune']!.outputs['model']!.hash;
    const one = await rig.run(...args, '--workers', '1', '--force', 'finetune');
    expect(one.stdout).toMatch(/cached the frozen part's output .* \(1 thread\)/);
    expect(rig.lockfile().stages['finetune']!.outputs['model']!.hash).toBe(trained);
  });

  it('a backend that cannot load here is a user error naming why', async () => {
    const rig = tinyProject();
    const result = await rig.run('run', '--backend', 'tensorflow', '--stage', 'features');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('stage "features" failed: backend tensorflow is not available: ');
  });

  it('a corrupt PNG in an image folder exits 2 naming it', async () => {
    const rig = new Rig();
    const exported = await rig.run('data', 'export', 'mnist', '--out', 'digits', '--per-class', '3');
    expect(exported.exitCode, exported.stderr).toBe(0);
    rig.write('headstart.yaml', 'stages:\n  data: { uses: load-data, with: { source: image-folder, path: digits } }\n');
    expect((await rig.runJson()).statuses).toEqual({ data: 'ran' });
    const victim = join(rig.dir, 'digits/train/7', (await import('node:fs')).readdirSync(join(rig.dir, 'digits/train/7'))[0]!);
    writeFileSync(victim, 'not a png at all');
    const result = await rig.run('run');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`digits/train/7/${victim.split('/').pop()}: not a readable image`);
  });
});
