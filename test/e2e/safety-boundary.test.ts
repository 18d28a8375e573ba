import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, readdirSync, readFileSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

/**
 * The workspace boundary: nothing a pipeline says may write, delete or chmod outside its project. Each
 * rig holds the project in `project/` and a sibling folder `outside/` that must come through untouched.
 */
function projectRig(pipeline: string): Rig {
  const rig = new Rig();
  rig.write('outside/keep.txt', 'keep\n');
  rig.write('project/headstart.yaml', pipeline);
  return rig;
}

function expectOutsideIntact(rig: Rig): void {
  expect(rig.read('outside/keep.txt')).toBe('keep\n');
  expect(rig.exists('project/headstart.yaml')).toBe(true);
}

/** Exit 2 and exactly one line, no stack trace. */
function expectOneLine(result: { exitCode: number; stderr: string }, expected: string | RegExp): void {
  expect(result.exitCode).toBe(2);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  if (typeof expected === 'string') expect(lines[0]).toBe(expected);
  else expect(lines[0]).toMatch(expected);
}

function shellStage(withText: string): string {
  return `stages:\n  a:\n    uses: shell\n    with: ${withText}\n`;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} never happened`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function cacheObjects(root: string): string[] {
  const objects = join(root, 'objects');
  return readdirSync(objects).flatMap((shard) => readdirSync(join(objects, shard)).map((name) => join(objects, shard, name)));
}

describe('workspace paths are refused at validation, pointing at the value', () => {
  it('outs that climb out with .. (it deleted ../outside before the command ran)', async () => {
    const rig = projectRig(shellStage('{ run: "echo hi", outs: { z: ../outside } }'));
    const result = await rig.run('run', 'project/headstart.yaml');
    expectOneLine(result, 'project/headstart.yaml:4:40: stage "a": "../outside" is outside the pipeline\'s directory');
    expectOutsideIntact(rig);
  });

  it('outs: ["."] (it deleted the whole project)', async () => {
    const rig = projectRig(shellStage('{ run: "echo hi", outs: ["."] }'));
    rig.write('project/data.txt', 'data\n');
    const result = await rig.run('run', 'project/headstart.yaml');
    expectOneLine(result, 'project/headstart.yaml:4:36: stage "a": "." is the pipeline\'s directory itself');
    expect(rig.read('project/data.txt')).toBe('data\n');
  });

  it('an absolute out', async () => {
    const rig = new Rig();
    rig.write('outside/keep.txt', 'keep\n');
    rig.write('project/headstart.yaml', shellStage(`{ run: "echo hi", outs: ["${join(rig.dir, 'outside')}"] }`));
    const result = await rig.run('run', 'project/headstart.yaml');
    expectOneLine(result, `project/headstart.yaml:4:36: stage "a": "${join(rig.dir, 'outside')}" is an absolute path; use a path relative to the pipeline's directory`);
    expectOutsideIntact(rig);
  });

  it('an out through a symlinked folder', async () => {
    const rig = projectRig(shellStage('{ run: "echo hi > link/keep.txt", outs: [link/keep.txt] }'));
    symlinkSync('../outside', join(rig.dir, 'project/link'));
    const result = await rig.run('run', 'project/headstart.yaml');
    expectOneLine(result, 'project/headstart.yaml:4:52: stage "a": "link/keep.txt" is outside the pipeline\'s directory (through a symbolic link)');
    expectOutsideIntact(rig);
  });

  it('a deps path outside the project', async () => {
    const rig = projectRig(shellStage('{ run: "echo hi", deps: [ok.txt, ../outside/keep.txt] }'));
    rig.write('project/ok.txt', 'ok\n');
    const result = await rig.run('run', 'project/headstart.yaml');
    expectOneLine(result, 'project/headstart.yaml:4:44: stage "a": "../outside/keep.txt" is outside the pipeline\'s directory');
  });

  it('outs on the pipeline file, its lock file or the cache', async () => {
    const cases: [string, string][] = [
      ['headstart.yaml', 'the pipeline file (headstart.yaml)'],
      ['headstart.lock', 'its lock file (headstart.lock)'],
      ['.headstart', 'the cache directory (.headstart/cache)'],
      ['.headstart/cache/objects', 'the cache directory (.headstart/cache)'],
    ];
    for (const [out, what] of cases) {
      const rig = projectRig(shellStage(`{ run: "echo hi", outs: [${out}] }`));
      const result = await rig.run('validate', 'project/headstart.yaml');
      expectOneLine(result, `project/headstart.yaml:4:36: stage "a": "${out}" overlaps ${what}`);
    }
  });

  it('a folder that became a link after validation is refused before anything is deleted', async () => {
    // `b`'s out is fine when the pipeline loads; `mk` then makes `sub` a link out of the project.
    const rig = projectRig(`stages:
  mk: { uses: shell, with: { run: "ln -s ../outside sub" } }
  b: { uses: shell, needs: [mk], with: { run: "echo hi > sub/keep.txt", outs: [sub/keep.txt] } }
`);
    const result = await rig.run('run', 'project/headstart.yaml');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('stage "b" failed: "sub/keep.txt" is outside the pipeline\'s directory (through a symbolic link)');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expectOutsideIntact(rig);
  });
});

describe('symbolic links among outputs', () => {
  it('a link out of the project fails the stage, and its target keeps its mode', async () => {
    const rig = projectRig(shellStage('{ run: "ln -s ../outside/keep.txt host", outs: { h: host } }'));
    const target = join(rig.dir, 'outside/keep.txt');
    chmodSync(target, 0o644);
    const result = await rig.run('run', 'project/headstart.yaml');
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('stage "a" failed: "host" is outside the pipeline\'s directory (through a symbolic link)');
    expect(statSync(target).mode & 0o777).toBe(0o644);
    expectOutsideIntact(rig);
  });

  it('a link to a file in the project is stored as that file\'s bytes, and restored as a file', async () => {
    const rig = projectRig(shellStage('{ run: "echo data > data.txt && mkdir -p d && echo a > d/a && ln -sf ../data.txt d/b && ln -sf data.txt host", outs: [host, d] }'));
    expect((await rig.run('run', 'project/headstart.yaml')).exitCode).toBe(0);
    const cache = join(rig.dir, 'project/.headstart/cache');
    for (const object of cacheObjects(cache)) expect(lstatSync(object).isSymbolicLink()).toBe(false);
    expect(statSync(join(rig.dir, 'project/data.txt')).mode & 0o222).not.toBe(0);

    unlinkSync(join(rig.dir, 'project/host'));
    const rerun = await rig.run('run', '--json', 'project/headstart.yaml');
    expect(JSON.parse(rerun.stdout).stages[0].status).toBe('cached');
    expect(lstatSync(join(rig.dir, 'project/host')).isFile()).toBe(true);
    expect(rig.read('project/host')).toBe('data\n');
  });
});

describe('clean deletes only a headstart cache', () => {
  const PIPELINE = shellStage('{ run: "echo a > a.txt", outs: [a.txt] }');

  it('--cache-dir . is refused and the project stays', async () => {
    const rig = projectRig(PIPELINE);
    const result = await rig.run('clean', 'project/headstart.yaml', '--cache-dir', 'project');
    expectOneLine(result, `${join(rig.dir, 'project')} is not a headstart cache (no CACHEDIR.TAG, and it holds headstart.yaml); nothing was deleted`);
    expectOutsideIntact(rig);
  });

  it('HEADSTART_CACHE_DIR naming another folder is refused', async () => {
    const rig = projectRig(PIPELINE);
    const result = await rig.runWith({ HEADSTART_CACHE_DIR: join(rig.dir, 'outside') }, 'clean', 'project/headstart.yaml');
    expectOneLine(result, `${join(rig.dir, 'outside')} is not a headstart cache (no CACHEDIR.TAG, and it holds keep.txt); nothing was deleted`);
    expectOutsideIntact(rig);
  });

  it('a marked cache loses only what headstart made in it', async () => {
    const rig = projectRig(PIPELINE);
    const store = join(rig.dir, 'store');
    expect((await rig.run('run', 'project/headstart.yaml', '--cache-dir', store)).exitCode).toBe(0);
    expect(readFileSync(join(store, 'CACHEDIR.TAG'), 'utf8')).toMatch(/^Signature: 8a477f597d28d172789f06886806bc55/);
    rig.write('store/notes.txt', 'mine\n');
    const result = await rig.run('clean', 'project/headstart.yaml', '--cache-dir', store);
    expect(result.exitCode).toBe(0);
    expect(readdirSync(store)).toEqual(['notes.txt']);
  });

  it('a cache from before the marker (only cache parts) is still removed', async () => {
    const rig = projectRig(PIPELINE);
    expect((await rig.run('run', 'project/headstart.yaml')).exitCode).toBe(0);
    unlinkSync(join(rig.dir, 'project/.headstart/cache/CACHEDIR.TAG'));
    const result = await rig.run('clean', 'project/headstart.yaml');
    expect(result.exitCode).toBe(0);
    expect(rig.exists('project/.headstart/cache')).toBe(false);
    expect(rig.read('project/a.txt')).toBe('a\n');
  });

  it('is refused while a run holds a stage lock, naming it; a dead holder does not count', async () => {
    const rig = projectRig(shellStage('{ run: "while [ ! -f go ]; do sleep 0.05; done; echo a > a.txt", outs: [a.txt] }'));
    const locks = join(rig.dir, 'project/.headstart/cache/locks');
    const run = rig.spawn({}, 'run', 'project/headstart.yaml');
    await waitFor(() => existsSync(locks) && readdirSync(locks).some((name) => /^[0-9a-f]{64}\.lock$/.test(name)), 'the stage lock');
    const refused = await rig.run('clean', 'project/headstart.yaml');
    expectOneLine(refused, new RegExp(`^the cache .*project/\\.headstart/cache is in use by process ${run.pid} on .*; nothing was deleted`));
    rig.write('project/go', '');
    expect((await run).exitCode).toBe(0);
    expect(rig.read('project/a.txt')).toBe('a\n');

    rig.write('project/.headstart/cache/locks/dead.lock', JSON.stringify({ pid: 99_999_999, host: hostname() }));
    expect((await rig.run('clean', 'project/headstart.yaml')).exitCode).toBe(0);
    expect(rig.exists('project/.headstart/cache')).toBe(false);
  });

  it('is refused while only a stage lock is held (no process has the cache open)', async () => {
    const rig = projectRig(PIPELINE);
    expect((await rig.run('run', 'project/headstart.yaml')).exitCode).toBe(0);
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      rig.write(`project/.headstart/cache/locks/${'ab'.repeat(32)}.lock`, JSON.stringify({ pid: holder.pid, host: hostname() }));
      const refused = await rig.run('clean', 'project/headstart.yaml');
      expectOneLine(refused, new RegExp(`^the cache .*project/\\.headstart/cache is in use by process ${holder.pid} on .*; nothing was deleted`));
      expect(rig.exists('project/.headstart/cache/objects')).toBe(true);
    } finally {
      holder.kill();
    }
  });

  it('a read-only command does not claim a user\'s folder, so clean cannot delete it afterwards', async () => {
    const rig = projectRig(PIPELINE);
    rig.write('mine/downloads/paper.pdf', 'pdf\n');
    rig.write('mine/tmp/draft-123-0123abcd/notes.txt', 'notes\n');
    rig.write('mine/thesis.tex', 'tex\n');
    const mine = join(rig.dir, 'mine');
    const status = await rig.run('status', 'project/headstart.yaml', '--cache-dir', mine);
    expectOneLine(status, `${mine} is not a headstart cache (no CACHEDIR.TAG, and it holds thesis.tex); nothing was deleted`);
    expect(rig.exists('mine/CACHEDIR.TAG')).toBe(false);
    // Loading refuses the folder before it writes its validators and validated files there.
    expect(readdirSync(mine).sort()).toEqual(['downloads', 'thesis.tex', 'tmp']);
    const clean = await rig.run('clean', 'project/headstart.yaml', '--cache-dir', mine);
    expectOneLine(clean, /is not a headstart cache/);
    expect(rig.read('mine/downloads/paper.pdf')).toBe('pdf\n');
    expect(rig.read('mine/tmp/draft-123-0123abcd/notes.txt')).toBe('notes\n');
    expect(rig.read('mine/thesis.tex')).toBe('tex\n');
  });

  it('a folder of generic names alone (downloads/, tmp/) is neither claimed nor cleaned', async () => {
    const rig = projectRig(PIPELINE);
    rig.write('mine/downloads/paper.pdf', 'pdf\n');
    rig.write('mine/tmp/keep.txt', 'keep\n');
    const mine = join(rig.dir, 'mine');
    expectOneLine(await rig.run('status', 'project/headstart.yaml', '--cache-dir', mine), `${mine} is not a headstart cache (no CACHEDIR.TAG, index.json or objects/); nothing was deleted`);
    expectOneLine(await rig.run('clean', 'project/headstart.yaml', '--cache-dir', mine), `${mine} is not a headstart cache (no CACHEDIR.TAG, index.json or objects/); nothing was deleted`);
    expect(rig.read('mine/downloads/paper.pdf')).toBe('pdf\n');
    expect(rig.read('mine/tmp/keep.txt')).toBe('keep\n');
  });
});
