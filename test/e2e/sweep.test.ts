import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, Rig } from './rig.js';

const SHARED = ['data', 'prep', 'features'];
const COMBINATIONS = ['lr=0.003,epochs=10', 'lr=0.003,epochs=5', 'lr=0.01,epochs=10', 'lr=0.01,epochs=5'];
const FANNED_OUT = ['head', 'unfreeze', 'finetune', 'eval'].flatMap((stage) => COMBINATIONS.map((values) => `${stage}@${values}`));

describe('a matrix sweep (pipelines/mnist-tiny-sweep.yaml)', () => {
  it('runs shared stages once and each head combination once, then is cached, and shares the cache with mnist-tiny', async () => {
    const rig = new Rig();
    copyFileSync(join(REPO, 'pipelines/mnist-tiny-sweep.yaml'), join(rig.dir, 'headstart.yaml'));
    copyFileSync(join(REPO, 'pipelines/mnist-tiny.yaml'), join(rig.dir, 'plain.yaml'));

    const first = await rig.runJson();
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.json.stages.map((stage) => stage.id)).toEqual([...SHARED, ...FANNED_OUT]);
    expect(Object.values(first.statuses).every((status) => status === 'ran')).toBe(true);
    const lock = rig.lockfile() as unknown as { stages: Record<string, { params: { lr?: number; epochs?: number }; metrics?: Record<string, number> }> };
    expect(Object.keys(lock.stages).sort()).toEqual([...SHARED, ...FANNED_OUT].sort());
    expect(lock.stages['head@lr=0.01,epochs=5']!.params).toMatchObject({ lr: 0.01, epochs: 5 });
    for (const values of COMBINATIONS) expect(lock.stages[`eval@${values}`]!.metrics!['accuracy']).toBeGreaterThan(0);

    const second = await rig.runJson();
    expect(new Set(Object.values(second.statuses))).toEqual(new Set(['cached']));
    expect((await rig.run('status', '--check')).exitCode).toBe(0);

    // mnist-tiny.yaml is the instance lr=0.003,epochs=10 written by hand: the same keys, all cached.
    const plain = await rig.runJson('plain.yaml');
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(new Set(Object.values(plain.statuses))).toEqual(new Set(['cached']));
    const sweepKeys = Object.fromEntries(second.json.stages.map((stage) => [stage.id, stage.key]));
    expect(plain.json.stages.find((stage) => stage.id === 'eval')!.key).toBe(sweepKeys['eval@lr=0.003,epochs=10']);
  });

  it('--stage and --force take a stage name (all its instances), an instance id, or some of its values', async () => {
    const rig = new Rig();
    copyFileSync(join(REPO, 'pipelines/mnist-tiny-sweep.yaml'), join(rig.dir, 'headstart.yaml'));
    const heads = await rig.runJson('--stage', 'head@epochs=5', '--set', 'params.per_class=10');
    expect(heads.exitCode, heads.stderr).toBe(0);
    expect(heads.statuses).toEqual({ data: 'ran', prep: 'ran', features: 'ran', 'head@lr=0.003,epochs=5': 'ran', 'head@lr=0.01,epochs=5': 'ran' });

    const forced = await rig.runJson('--stage', 'head', '--force', 'head@lr=0.01,epochs=5', '--set', 'params.per_class=10');
    expect(Object.entries(forced.statuses).filter(([, status]) => status === 'ran').map(([id]) => id).sort()).toEqual(['head@lr=0.003,epochs=10', 'head@lr=0.01,epochs=10', 'head@lr=0.01,epochs=5']);

    const unknown = await rig.run('run', '--stage', 'haed');
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr.trim()).toBe('no stage named "haed" (did you mean "head"?)');
  });

  it('graph, validate and --set work on instances; errors point into the file', async () => {
    const rig = new Rig();
    copyFileSync(join(REPO, 'pipelines/mnist-tiny-sweep.yaml'), join(rig.dir, 'headstart.yaml'));
    expect((await rig.run('validate')).stdout.trim()).toBe('headstart.yaml: ok (19 stages)');
    expect((await rig.run('validate', '--set', 'head.lr=0.1')).stdout.trim()).toBe('headstart.yaml: ok (11 stages)');
    const dot = (await rig.run('graph', '--format', 'dot')).stdout;
    expect(dot).toContain('"features" -> "head@lr=0.01,epochs=5" [label="features"];');
    expect(dot).toContain('"head@lr=0.01,epochs=5" -> "unfreeze@lr=0.01,epochs=5" [label="model"];');
    const mermaid = (await rig.run('graph')).stdout;
    expect(mermaid).toMatch(/^ {2}(\w+)\["head@lr=0\.003,epochs=10<br\/>/m);

    rig.write('headstart.yaml', rig.read('headstart.yaml').replace('"${matrix.lr}"', '"${matrix.rate}"'));
    const bad = await rig.run('run');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim()).toBe('headstart.yaml:25:88: cannot interpolate "${matrix.rate}": no matrix axis "rate" (axes: lr, epochs)');
    expect(rig.exists('.headstart/cache/runs')).toBe(false);
  });
});
