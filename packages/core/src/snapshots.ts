import { existsSync, readdirSync, statSync } from 'node:fs';
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

/** The keys whose snapshot lock a live process holds now. */
function liveKeys(cacheRoot: string): Set<string> {
  return new Set(
    locksIn(join(cacheRoot, 'locks'), LOCK_PREFIX)
      .filter((lock) => lock.holder)
      .map((lock) => lock.path.slice(lock.path.lastIndexOf(LOCK_PREFIX) + LOCK_PREFIX.length).split('-')[0]!),
  );
}

/**
 * The snapshot folders no live process runs the key of and nothing wrote in since `olderThanMs` (epoch
 * ms), with their sizes in bytes. A recent one is a crashed run's resume point the user may still want.
 */
export function staleSnapshots(cacheRoot: string, olderThanMs: number): { key: string; path: string; bytes: number }[] {
  const live = liveKeys(cacheRoot);
  return names(join(cacheRoot, SNAPSHOTS))
    .filter((key) => !live.has(key) && newestMtimeMs(snapshotDirFor(cacheRoot, key)) < olderThanMs)
    .map((key) => ({ key, path: snapshotDirFor(cacheRoot, key), bytes: folderBytes(snapshotDirFor(cacheRoot, key)) }));
}

/**
 * Removes the stale snapshot folders (see staleSnapshots) and the lock files dead processes left; what
 * it removed. The lock is checked again just before each removal: a run may have taken the key meanwhile.
 */
export async function removeStaleSnapshots(cacheRoot: string, olderThanMs: number, dryRun: boolean): Promise<{ removed: number; bytes: number }> {
  const stale = staleSnapshots(cacheRoot, olderThanMs);
  if (dryRun) return { removed: stale.length, bytes: stale.reduce((sum, s) => sum + s.bytes, 0) };
  const removed: typeof stale = [];
  for (const snapshot of stale) {
    if (liveKeys(cacheRoot).has(snapshot.key)) continue;
    await rm(snapshot.path, { recursive: true, force: true });
    removed.push(snapshot);
  }
  for (const lock of locksIn(join(cacheRoot, 'locks'), LOCK_PREFIX)) if (!lock.holder) await rm(lock.path, { force: true });
  return { removed: removed.length, bytes: removed.reduce((sum, s) => sum + s.bytes, 0) };
}

/** Removes `key`'s snapshot folder (a forced run starts clean); whether there was one. */
export async function discardSnapshot(cacheRoot: string, key: string): Promise<boolean> {
  const path = snapshotDirFor(cacheRoot, key);
  if (!existsSync(path)) return false;
  await rm(path, { recursive: true, force: true });
  return true;
}

/** The newest modification time of `dir` and what it holds (epoch ms); 0 when it is gone. */
function newestMtimeMs(dir: string): number {
  const mtime = (path: string) => {
    try {
      return statSync(path).mtimeMs;
    } catch {
      return 0;
    }
  };
  return Math.max(mtime(dir), ...names(dir).map((name) => mtime(join(dir, name))));
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
