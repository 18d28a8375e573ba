import { readdirSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { holdSharedLock, locksIn } from './process-lock.js';

/*
 * Resumable state of stages (ctx.snapshotDir): `<cache>/snapshots/<key>/`, one folder per stage key.
 * Whoever runs a key holds a shared lock `locks/snapshot-<key>-….lock` meanwhile (the executor's stage
 * lock is not taken by queue workers), so `gc` can tell a running stage's snapshots from stale ones.
 */

const SNAPSHOTS = 'snapshots';
const LOCK_PREFIX = 'snapshot-';

export function snapshotDirFor(cacheRoot: string, key: string): string {
  return join(cacheRoot, SNAPSHOTS, key);
}

/** Marks `key` as running in this process until the returned function is called. */
export function holdSnapshotLock(cacheRoot: string, key: string): () => void {
  return holdSharedLock(join(cacheRoot, 'locks'), `${LOCK_PREFIX}${key}`);
}

/** The snapshot folders no live process runs the key of, with their sizes in bytes. */
export function staleSnapshots(cacheRoot: string): { key: string; path: string; bytes: number }[] {
  const live = new Set(
    locksIn(join(cacheRoot, 'locks'), LOCK_PREFIX)
      .filter((lock) => lock.holder)
      .map((lock) => lock.path.slice(lock.path.lastIndexOf(LOCK_PREFIX) + LOCK_PREFIX.length).split('-')[0]!),
  );
  return names(join(cacheRoot, SNAPSHOTS))
    .filter((key) => !live.has(key))
    .map((key) => ({ key, path: snapshotDirFor(cacheRoot, key), bytes: folderBytes(snapshotDirFor(cacheRoot, key)) }));
}

/** Removes the stale snapshot folders and the lock files dead processes left; what it removed. */
export async function removeStaleSnapshots(cacheRoot: string, dryRun: boolean): Promise<{ removed: number; bytes: number }> {
  const stale = staleSnapshots(cacheRoot);
  if (!dryRun) {
    for (const { path } of stale) await rm(path, { recursive: true, force: true });
    for (const lock of locksIn(join(cacheRoot, 'locks'), LOCK_PREFIX)) if (!lock.holder) await rm(lock.path, { force: true });
  }
  return { removed: stale.length, bytes: stale.reduce((sum, s) => sum + s.bytes, 0) };
}

function folderBytes(dir: string): number {
  return names(dir).reduce((sum, name) => {
    try {
      const stat = statSync(join(dir, name));
      return sum + (stat.isDirectory() ? folderBytes(join(dir, name)) : stat.size);
    } catch {
      return sum;
    }
  }, 0);
}

function names(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
