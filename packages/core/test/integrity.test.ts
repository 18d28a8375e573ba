import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ingestDirectory, materialize, openCache, sha256, verifyArtifact, verifyCache, type RunRecord, type StageKey } from '../src/index.js';
import { FileHasher } from '../src/file-hasher.js';
import { tempDir } from './helpers.js';

async function cacheWith(files: Record<string, string>) {
  const root = tempDir();
  const warnings: string[] = [];
  const cache = openCache(join(root, 'cache'), (message) => warnings.push(message));
  const output = join(root, 'out');
  await mkdir(output);
  for (const [name, text] of Object.entries(files)) await writeFile(join(output, name), text);
  const ref = await ingestDirectory(output, cache.store, cache.hasher);
  return { cache, ref, warnings };
}

/** Same size, other bytes, mtime put back: what only the ctime reveals. */
function rewriteKeepingMtime(path: string, text: string): void {
  const reference = `${path}.mtime`;
  copyFileSync(path, reference);
  execFileSync('touch', ['-r', path, reference]);
  chmodSync(path, 0o644);
  writeFileSync(path, text);
  chmodSync(path, 0o444);
  execFileSync('touch', ['-r', reference, path]); // nanosecond-exact, unlike utimes with a Date
  rmSync(reference);
}

describe('object integrity', () => {
  it('an object rewritten in place with its mtime put back fails verification and is removed', async () => {
    const { cache, ref, warnings } = await cacheWith({ 'a.txt': 'alpha' });
    const path = cache.store.objectPath(sha256('alpha'));
    await materialize(ref, cache.store);
    expect(await verifyArtifact(ref, cache.store)).toBe(true);
    rewriteKeepingMtime(path, 'ALPHA');
    expect(await verifyArtifact(ref, cache.store)).toBe(false);
    expect(warnings).toEqual([`cache object ${sha256('alpha').slice(0, 12)} is corrupt (its content no longer matches its hash); removing it`]);
    expect(existsSync(path)).toBe(false);
  });

  it('materializing (a hard link, which moves the ctime) does not cost a re-hash of intact objects', async () => {
    const { cache, ref } = await cacheWith({ 'a.txt': 'alpha' });
    const path = cache.store.objectPath(sha256('alpha'));
    await materialize(ref, cache.store);
    const stat = statSync(path);
    expect(stat.nlink).toBe(2);
    await cache.close();
    const index = JSON.parse(readFileSync(join(cache.root, 'index.json'), 'utf8')) as { entries: Record<string, unknown> };
    expect(index.entries[path]).toEqual([stat.size, stat.mtimeMs, stat.ino, stat.ctimeMs, sha256('alpha')]);
  });

  it('a file written between the stat before a link and the restamp keeps no stale hash', async () => {
    const path = join(tempDir(), 'object');
    writeFileSync(path, 'alpha');
    const hasher = FileHasher.inMemory();
    const before = statSync(path);
    hasher.remember(path, before, sha256('alpha'), true);
    writeFileSync(path, 'alpha, rewritten');
    hasher.restamp(path, before, sha256('alpha'));
    expect(await hasher.hashFile(path)).toBe(sha256('alpha, rewritten'));
  });

  it('verifyCache re-hashes everything and removes corrupt objects and the records that name them', async () => {
    const { cache, ref } = await cacheWith({ 'a.txt': 'alpha', 'b.txt': 'beta' });
    const other = await cacheWithSameStore(cache, { 'c.txt': 'gamma' });
    const record = (key: string, outputs: RunRecord['outputs']): RunRecord => ({ recordVersion: 1, key: key as StageKey, stage: key.slice(0, 1), keyDocument: {} as RunRecord['keyDocument'], outputs, durationMs: 1, createdAt: new Date().toISOString() });
    await cache.store.writeRecord(record('a'.repeat(64), { out: ref }));
    await cache.store.writeRecord(record('b'.repeat(64), { out: other }));
    expect(await verifyCache(cache)).toEqual({ objects: 5, corrupt: [], removedRecords: 0 });

    rewriteKeepingMtime(cache.store.objectPath(sha256('beta')), 'BETA');
    expect(await verifyCache(cache)).toEqual({ objects: 5, corrupt: [sha256('beta')], removedRecords: 1 });
    expect(await cache.store.readRecord('a'.repeat(64) as StageKey)).toBeUndefined();
    expect(await cache.store.readRecord('b'.repeat(64) as StageKey)).toBeDefined();
    expect(await verifyCache(cache)).toEqual({ objects: 4, corrupt: [], removedRecords: 0 });
  });
});

async function cacheWithSameStore(cache: Awaited<ReturnType<typeof cacheWith>>['cache'], files: Record<string, string>) {
  const output = join(tempDir(), 'out');
  await mkdir(output);
  for (const [name, text] of Object.entries(files)) await writeFile(join(output, name), text);
  return ingestDirectory(output, cache.store, cache.hasher);
}
