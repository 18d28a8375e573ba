import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Rig } from './rig.js';

const HERE = dirname(fileURLToPath(import.meta.url));

const PIPELINE = `
name: caching
params: { n: 3, word: hi }
stages:
  source:
    uses: shell
    with:
      run: "seq \${params.n} > nums.txt; cat input.txt >> nums.txt; echo ran >> source.log"
      deps: [input.txt]
      outs: { nums: nums.txt }
  firstline:
    uses: shell
    inputs: { nums: source.nums }
    with:
      run: 'head -1 "$HEADSTART_INPUT_NUMS/nums.txt" > first.txt; echo ran >> firstline.log'
      outs: { first: first.txt }
  shout:
    uses: shell
    inputs: { first: firstline.first }
    with:
      run: 'echo "\${params.word} $(cat "$HEADSTART_INPUT_FIRST/first.txt")" > shout.txt; echo ran >> shout.log'
      outs: { shout: shout.txt }
  side:
    uses: shell
    with: { run: "echo side > side.txt; echo ran >> side.log", outs: [side.txt] }
`;

function project(): Rig {
  const rig = new Rig();
  rig.write('headstart.yaml', PIPELINE);
  rig.write('input.txt', 'end\n');
  return rig;
}

const runs = (rig: Rig, stage: string) => (rig.exists(`${stage}.log`) ? rig.read(`${stage}.log`).trim().split('\n').length : 0);

describe('caching', () => {
  it('runs everything once, then nothing on an unchanged second run', async () => {
    const rig = project();
    const first = await rig.runJson();
    expect(first.exitCode).toBe(0);
    expect(first.statuses).toEqual({ source: 'ran', firstline: 'ran', shout: 'ran', side: 'ran' });
    expect(rig.read('shout.txt')).toBe('hi 1\n');
    const lock = rig.read('headstart.lock');

    const second = await rig.runJson();
    expect(second.statuses).toEqual({ source: 'cached', firstline: 'cached', shout: 'cached', side: 'cached' });
    expect(second.json.stages.map((s) => s.key)).toEqual(first.json.stages.map((s) => s.key));
    expect(['source', 'firstline', 'shout', 'side'].map((s) => runs(rig, s))).toEqual([1, 1, 1, 1]);
    expect(rig.read('headstart.lock')).toBe(lock);
  });

  it('re-runs a stage whose param changed and its downstream only', async () => {
    const rig = project();
    await rig.runJson();
    const changed = await rig.runJson('--set', 'params.word=ho');
    expect(changed.statuses).toEqual({ source: 'cached', firstline: 'cached', shout: 'ran', side: 'cached' });
    expect(changed.json.stages.find((s) => s.id === 'shout')!.why).toEqual([expect.stringContaining('param run:')]);
    expect(rig.read('shout.txt')).toBe('ho 1\n');
  });

  it('re-runs a stage whose deps file changed', async () => {
    const rig = project();
    await rig.runJson();
    rig.write('input.txt', 'other end\n');
    const changed = await rig.runJson();
    expect(changed.statuses.source).toBe('ran');
    expect(changed.json.stages.find((s) => s.id === 'source')!.why).toEqual(['input.txt changed']);
  });

  it('cuts off early: an upstream that re-ran with identical output leaves downstream cached', async () => {
    const rig = project();
    await rig.runJson();
    const changed = await rig.runJson('--set', 'params.n=5');
    // source's output changed, firstline re-ran on it, but its first line is still "1".
    expect(changed.statuses).toEqual({ source: 'ran', firstline: 'ran', shout: 'cached', side: 'cached' });
    expect(runs(rig, 'shout')).toBe(1);
  });

  it('--force re-runs the named stage; --force-all every stage', async () => {
    const rig = project();
    await rig.runJson();
    expect((await rig.runJson('--force', 'side')).statuses).toEqual({ source: 'cached', firstline: 'cached', shout: 'cached', side: 'ran' });
    expect(Object.values((await rig.runJson('--force-all')).statuses)).toEqual(['ran', 'ran', 'ran', 'ran']);
  });

  it('--stage runs only that stage and what it needs', async () => {
    const rig = project();
    const result = await rig.runJson('--stage', 'firstline');
    expect(result.statuses).toEqual({ source: 'ran', firstline: 'ran' });
    expect(rig.exists('side.txt')).toBe(false);
    expect(Object.keys(rig.lockfile().stages).sort()).toEqual(['firstline', 'source']);
  });

  it('status says why each stage would run; --check exits 1 until the run', async () => {
    const rig = project();
    const before = await rig.run('status', '--check');
    expect(before.exitCode).toBe(1);
    expect(before.stdout).toContain('> source: will run (never ran)');
    expect(before.stdout).toContain('> firstline: will run (upstream source will run)');
    await rig.runJson();
    const after = await rig.run('status', '--check');
    expect(after.exitCode).toBe(0);
    expect(after.stdout).toContain('everything is up to date');
    const changed = await rig.run('status', '--check', '--set', 'params.n=4');
    expect(changed.exitCode).toBe(1);
    expect(changed.stdout).toContain('> source: will run (param run: "seq 3 > nums.txt; cat input.txt >> nums.txt; echo ran >> source.log" -> "seq 4');
  });

  it('--dry-run runs nothing and writes no lock file', async () => {
    const rig = project();
    const result = await rig.runJson('--dry-run');
    expect(Object.values(result.statuses)).toEqual(['would-run', 'would-run', 'would-run', 'would-run']);
    expect(rig.exists('headstart.lock')).toBe(false);
    expect(rig.exists('source.log')).toBe(false);
  });

  it('restores a deleted workspace output from the cache on a hit', async () => {
    const rig = project();
    await rig.runJson();
    (await import('node:fs')).rmSync(`${rig.dir}/shout.txt`);
    expect((await rig.runJson()).statuses.shout).toBe('cached');
    expect(rig.read('shout.txt')).toBe('hi 1\n');
  });

  it('a re-run whose workspace outs are intact links nothing out of the cache, so the first re-run is as cheap as later ones', async () => {
    const rig = project();
    await rig.runJson();
    const trees = () => readdirSync(join(rig.dir, '.headstart/cache/trees')).sort();
    const afterCold = trees();
    expect(afterCold).toHaveLength(2);
    expect(Object.values((await rig.runJson()).statuses)).toEqual(['cached', 'cached', 'cached', 'cached']);
    expect(trees()).toEqual(afterCold);
    rmSync(join(rig.dir, 'side.txt'));
    await rig.runJson();
    expect(rig.read('side.txt')).toBe('side\n');
    expect(trees()).toHaveLength(3);
  });

  it('removes a stage\'s outs before its command runs again', async () => {
    const rig = project();
    await rig.runJson();
    rig.write('side.txt', 'stale\n');
    rig.write('headstart.yaml', PIPELINE.replace('echo side > side.txt', 'test ! -e side.txt && echo fresh > side.txt'));
    const rerun = await rig.runJson();
    expect(rerun.statuses.side).toBe('ran');
    expect(rig.read('side.txt')).toBe('fresh\n');
  });

  it('prints one line per stage without --json', async () => {
    const rig = project();
    const first = await rig.run('run', '--jobs', '1');
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toMatch(/^✓ source: ran in \d+(ms|\.\ds) \(never ran\)$/m);
    const second = await rig.run('run');
    expect(second.stdout.trim().split('\n').sort()).toEqual(['· firstline: cached', '· shout: cached', '· side: cached', '· source: cached']);
  });

  it('a fully cached run loads no ML library, and without a remote neither the remote package nor the AWS SDK', async () => {
    const rig = project();
    await rig.runJson();
    const trace = join(rig.dir, 'trace.txt');
    const result = await rig.runWith({ NODE_OPTIONS: `--import=${pathToFileURL(join(HERE, 'fixtures/trace-imports.mjs')).href}`, HEADSTART_TRACE_FILE: trace }, 'run');
    expect(result.stdout).toContain('· side: cached');
    const modules = readFileSync(trace, 'utf8');
    expect(modules).toContain('/packages/core/dist/executor.js');
    expect(modules).not.toMatch(/@tensorflow|sharp|nsfwjs|execa/);
    expect(modules).not.toMatch(/@aws-sdk|@smithy|packages\/remote\//);
  });

  it('graph prints mermaid and dot', async () => {
    const rig = project();
    expect((await rig.run('graph')).stdout).toContain('source -->|nums| firstline');
    expect((await rig.run('graph', '--format', 'dot')).stdout).toContain('"firstline" -> "shout" [label="first"];');
  });

  it('gc keeps what the lock file references; clean removes the cache', async () => {
    const rig = project();
    await rig.runJson();
    const gc = await rig.run('gc', '--keep-days', '1');
    expect(gc.stdout).toMatch(/^removed 0 objects/);
    expect((await rig.runJson()).statuses.source).toBe('cached');
    expect((await rig.run('clean')).exitCode).toBe(0);
    expect(rig.exists('.headstart/cache')).toBe(false);
    expect((await rig.runJson()).statuses.source).toBe('ran');
  });
});
