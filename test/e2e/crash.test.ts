import { readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

/** Resolves once `path` exists: a condition, not a timing guess. */
async function waitForFile(rig: Rig, path: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!rig.exists(path)) {
    if (Date.now() > deadline) throw new Error(`${path} never appeared`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// `slow` blocks until the file `go` exists, so the test decides when it may finish.
const PIPELINE = `stages:
  fast: { uses: shell, with: { run: "echo fast > fast.txt; echo ran >> fast.log", outs: [fast.txt] } }
  slow:
    uses: shell
    needs: [fast]
    with: { run: "echo ran >> slow.log; touch started; while [ ! -f go ]; do sleep 0.05; done; echo slow > slow.txt", outs: [slow.txt] }
`;

describe('crashes and corruption', () => {
  it('kill -9 during a stage loses nothing cached; the next run completes', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const child = rig.spawn({}, 'run', '--json');
    await waitForFile(rig, 'started');
    child.kill('SIGKILL');
    await child;
    rig.write('go', '');
    const rerun = await rig.runJson();
    expect(rerun.exitCode).toBe(0);
    expect(rerun.statuses).toEqual({ fast: 'cached', slow: 'ran' });
    expect(rig.read('fast.log')).toBe('ran\n');
    expect(rig.read('slow.txt')).toBe('slow\n');
  });

  it('Ctrl-C stops cleanly with exit 130 and caches nothing half-done', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', PIPELINE);
    const child = rig.spawn({}, 'run');
    await waitForFile(rig, 'started');
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(String(result.stderr)).toContain('interrupted');
    rig.write('go', '');
    expect((await rig.runJson()).statuses).toEqual({ fast: 'cached', slow: 'ran' });
  });

  it('a corrupted cache object is detected, reported and recomputed', async () => {
    const rig = new Rig();
    rig.write('go', '');
    rig.write('headstart.yaml', PIPELINE);
    await rig.runJson();
    const manifestHash = rig.lockfile().stages['fast']!.outputs['fast.txt']!.hash;
    const objects = join(rig.dir, '.headstart/cache/objects');
    const manifest = JSON.parse(readFileSync(join(objects, manifestHash.slice(0, 2), manifestHash.slice(2)), 'utf8'));
    const fileHash: string = manifest.entries[0].hash;
    const objectPath = join(objects, fileHash.slice(0, 2), fileHash.slice(2));
    chmodSync(objectPath, 0o644);
    writeFileSync(objectPath, 'fasT\n');

    const rerun = await rig.runJson();
    expect(rerun.stderr).toContain(`cache object ${fileHash.slice(0, 12)} is corrupt`);
    expect(rerun.statuses).toEqual({ fast: 'ran', slow: 'cached' });
    expect(readFileSync(objectPath, 'utf8')).toBe('fast\n');
    expect(rig.read('fast.log')).toBe('ran\nran\n');
  });
});

describe('concurrency', () => {
  it('two runs of the same pipeline on one cache both finish, and each stage runs once', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', `stages:
  a: { uses: shell, with: { run: "echo ran >> a.log; touch a-started; while [ ! -f go ]; do sleep 0.05; done; echo a > a.txt", outs: [a.txt] } }
  b: { uses: shell, inputs: { a: a.a.txt }, with: { run: "echo ran >> b.log; cat $HEADSTART_INPUT_A/a.txt > b.txt", outs: [b.txt] } }
`);
    const first = rig.spawn({}, 'run', '--json');
    await waitForFile(rig, 'a-started');
    const second = rig.spawn({}, 'run', '--json');
    // The second run must be waiting on the first's lock before we let stage a finish.
    const waiting = new Promise<void>((resolve) => second.stderr!.on('data', (chunk: Buffer) => chunk.toString().includes('waiting for') && resolve()));
    await waiting;
    rig.write('go', '');
    const [one, two] = await Promise.all([first, second]);
    expect([one.exitCode, two.exitCode]).toEqual([0, 0]);
    const statuses = (stdout: unknown) => Object.fromEntries((JSON.parse(String(stdout)).stages as { id: string; status: string }[]).map((s) => [s.id, s.status]));
    expect(statuses(one.stdout)).toEqual({ a: 'ran', b: 'ran' });
    expect(statuses(two.stdout)).toEqual({ a: 'cached', b: 'cached' });
    expect(rig.read('a.log')).toBe('ran\n');
    expect(rig.read('b.log')).toBe('ran\n');
    expect(String(two.stderr)).toContain('a: waiting for process');
  });
});
