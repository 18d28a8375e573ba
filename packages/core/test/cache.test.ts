import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileHasher, acquireProcessLock, ingestDirectory, materialize, openCache, sha256, type Sha256Hex } from '../src/index.js';
import { tempDir } from './helpers.js';

describe('incremental hashing', () => {
  it('reuses a hash while size, mtime, inode and ctime are unchanged, and re-reads a changed file', async () => {
    const dir = tempDir();
    const file = join(dir, 'a.txt');
    writeFileSync(file, 'one');
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    const hasher = FileHasher.load(join(dir, 'index.json'));
    expect(await hasher.hashFile(file)).toBe(sha256('one'));
    await hasher.save();

    // Untouched: the index is trusted (this is what makes it fast).
    expect(await FileHasher.load(join(dir, 'index.json')).hashFile(file)).toBe(sha256('one'));

    // Same size and mtime put back, other bytes: the ctime moved, so it is re-read.
    writeFileSync(file, 'two');
    utimesSync(file, old, old);
    expect(await FileHasher.load(join(dir, 'index.json')).hashFile(file)).toBe(sha256('two'));

    // A real edit moves the mtime: re-hashed.
    writeFileSync(file, 'three');
    expect(await FileHasher.load(join(dir, 'index.json')).hashFile(file)).toBe(sha256('three'));
  });

  it('hashes a folder as the manifest of its files, independent of where it lives', async () => {
    const [a, b] = [tempDir(), tempDir()];
    for (const root of [a, b]) {
      mkdirSync(join(root, 'sub'));
      writeFileSync(join(root, 'x.txt'), 'x');
      writeFileSync(join(root, 'sub', 'y.txt'), 'y');
    }
    const hasher = FileHasher.inMemory();
    const digestA = await hasher.hashPath(a);
    expect(digestA).toEqual(await FileHasher.inMemory().hashPath(b));
    expect(digestA.kind).toBe('dir');
    expect(digestA.size).toBe(2);
    writeFileSync(join(b, 'sub', 'y.txt'), 'z');
    expect((await FileHasher.inMemory().hashPath(b)).hash).not.toBe(digestA.hash);
  });
});

describe('object store', () => {
  async function storeWithArtifact() {
    const root = tempDir();
    const warnings: string[] = [];
    const cache = openCache(join(root, 'cache'), (message) => warnings.push(message));
    const output = join(root, 'out');
    mkdirSync(join(output, 'nested'), { recursive: true });
    writeFileSync(join(output, 'a.bin'), 'alpha');
    writeFileSync(join(output, 'nested', 'b.bin'), 'beta');
    const ref = await ingestDirectory(output, cache.store, cache.hasher);
    return { cache, ref, warnings };
  }

  it('stores outputs by content and materializes them back as a directory', async () => {
    const { cache, ref } = await storeWithArtifact();
    expect(existsSync(cache.store.objectPath(sha256('alpha')))).toBe(true);
    const dir = await materialize(ref, cache.store);
    expect(readFileSync(join(dir, 'nested', 'b.bin'), 'utf8')).toBe('beta');
    expect(ref.size).toBe(9);
  });

  it('treats an object whose bytes no longer match its name as missing, with a warning', async () => {
    const { cache, warnings } = await storeWithArtifact();
    const hash = sha256('alpha') as Sha256Hex;
    expect(await cache.store.verify(hash)).toBe(true);
    const path = cache.store.objectPath(hash);
    chmodSync(path, 0o644);
    writeFileSync(path, 'alphx');
    expect(await cache.store.verify(hash)).toBe(false);
    expect(existsSync(path)).toBe(false);
    expect(warnings[0]).toMatch(/is corrupt/);
  });

  it('writes objects read-only', async () => {
    const { cache } = await storeWithArtifact();
    expect(statSync(cache.store.objectPath(sha256('beta') as Sha256Hex)).mode & 0o222).toBe(0);
  });
});

describe('process locks', () => {
  it('releases a lock whose owner process is dead', async () => {
    const path = join(tempDir(), 'stage.lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    writeFileSync(path, JSON.stringify({ pid: Number(dead.stdout.toString()), host: (await import('node:os')).hostname() }));
    const waits: string[] = [];
    const release = await acquireProcessLock(path, { onWait: (holder) => waits.push(holder) });
    expect(waits).toEqual([]);
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    release();
    expect(existsSync(path)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('releases a lock whose owner exited but was not yet collected by its parent (a zombie)', async () => {
    const path = join(tempDir(), 'stage.lock');
    // sh starts a short-lived child, then becomes `sleep`, which never collects it: a zombie for a while.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const [line] = (await once(parent.stdout, 'data')) as [Buffer];
      const zombie = Number(line.toString().trim());
      await expect.poll(() => readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1]?.[0], { timeout: 3000 }).toBe('Z');
      writeFileSync(path, JSON.stringify({ pid: zombie, host: (await import('node:os')).hostname() }));
      const waits: string[] = [];
      const release = await acquireProcessLock(path, { onWait: (holder) => waits.push(holder), pollMs: 10 });
      expect(waits).toEqual([]);
      release();
    } finally {
      parent.kill();
    }
  });

  it('waits for a live holder and says so once', async () => {
    const path = join(tempDir(), 'stage.lock');
    const first = await acquireProcessLock(path);
    const waits: string[] = [];
    let acquired = false;
    const second = acquireProcessLock(path, { onWait: (holder) => waits.push(holder), pollMs: 10 }).then((release) => {
      acquired = true;
      return release;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(acquired).toBe(false);
    expect(waits).toEqual([`process ${process.pid} on ${(await import('node:os')).hostname()}`]);
    first();
    (await second)();
    expect(acquired).toBe(true);
  });
});
