import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

/** mnist-tiny cut down to a head; `suggest` stands in for an lr-find stage: a shell out is an artifact like any other. */
function pipeline(head: string): string {
  return `name: lr-input
seed: 1
stages:
  data: { uses: load-data, with: { source: mnist, limit_per_class: 10 } }
  prep: { uses: preprocess, inputs: { dataset: data.dataset }, with: { size: 28, split: { train: 0.7, val: 0.15, test: 0.15 } } }
  features: { uses: extract-features, inputs: { dataset: prep.dataset }, with: { base: mnist_cnn } }
  suggest: { uses: shell, with: { run: "\${params.copy}", deps: [lr-source.json], outs: { lr: lr.json } } }
  head: ${head}
params: { copy: cp lr-source.json lr.json }
`;
}

const WIRED = '{ uses: train-head, inputs: { features: features.features, lr: suggest.lr }, with: { layers: [{ dense: 8 }], epochs: 2, lr_scale: 0.5 } }';

/** The hash of the head's weights.bin, from its artifact's manifest (metadata.json holds timings, so the artifact hash varies). */
function headWeights(rig: Rig, lock = 'headstart.lock'): string {
  const hash = rig.lockfile(lock).stages['head']!.outputs['head']!.hash;
  const manifest = JSON.parse(readFileSync(join(rig.dir, '.headstart/cache/objects', hash.slice(0, 2), hash.slice(2)), 'utf8')) as { entries: { path: string; hash: string }[] };
  return manifest.entries.find((entry) => entry.path === 'weights.bin')!.hash;
}

describe('a stage output that sets the learning rate', () => {
  it('trains at lr.json × lr_scale, says so in status and --dry-run, is keyed by the file, and refuses a bad one', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', pipeline(WIRED));
    rig.write('lr-source.json', '{ "lr": 0.003, "suggest": "valley" }\n');

    const before = await rig.run('status');
    expect(before.stdout).toContain('> head: will run (upstream features will run)\n    lr ← suggest.lr × lr_scale 0.5');

    const first = await rig.run('run');
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toContain('[head] lr 0.0015 = input lr 0.003 (lr.json) × lr_scale 0.5');
    expect((await rig.run('status')).stdout).toContain('· head: up to date\n    lr ← suggest.lr 0.003 × lr_scale 0.5 = 0.0015');
    expect((await rig.run('run', '--dry-run')).stdout).toContain('· head: cached\n    lr ← suggest.lr 0.003 × lr_scale 0.5 = 0.0015');

    // The suggestion's stage re-runs and writes the same bytes: everything below stays cached.
    const same = await rig.runJson('--set', 'params.copy=cp lr-source.json lr.json && true');
    expect(same.statuses).toMatchObject({ suggest: 'ran', head: 'cached' });

    rig.write('lr-source.json', '{ "lr": 0.006, "suggest": "valley" }\n');
    const changed = await rig.runJson();
    expect(changed.statuses).toMatchObject({ suggest: 'ran', head: 'ran' });
    expect(changed.json.stages.find((s) => s.id === 'head')!.why).toEqual(['input lr changed']);

    // The weights are those of the same head trained with `lr: 0.003` written out (and not those of 0.0015).
    rig.write('plain.yaml', pipeline('{ uses: train-head, inputs: { features: features.features }, with: { layers: [{ dense: 8 }], epochs: 2, lr: 0.003 } }'));
    expect((await rig.run('run', 'plain.yaml')).exitCode).toBe(0);
    expect(headWeights(rig, 'plain.lock')).toBe(headWeights(rig));
    rig.write('plain.yaml', pipeline('{ uses: train-head, inputs: { features: features.features }, with: { layers: [{ dense: 8 }], epochs: 2, lr: 0.0015 } }'));
    expect((await rig.run('run', 'plain.yaml')).exitCode).toBe(0);
    expect(headWeights(rig, 'plain.lock')).not.toBe(headWeights(rig));

    rig.write('lr-source.json', '{ "lr": "fast" }\n');
    const bad = await rig.run('run');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split('\n').at(-1)).toBe('stage "head" failed: lr.json of input "lr": "lr" must be a number > 0, found "fast"');
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });

  it('lr written beside the lr input is refused before anything runs', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', pipeline(WIRED.replace('lr_scale: 0.5', 'lr: 0.01')));
    const both = await rig.run('run');
    expect(both.exitCode).toBe(2);
    expect(both.stderr.trim()).toBe('headstart.yaml:8:129: stage "head": "lr" is set by input "lr" × lr_scale: remove it from with:, or leave the input out');
    expect(rig.exists('.headstart/cache/runs')).toBe(false);
  });
});
