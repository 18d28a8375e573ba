import { mkdirSync, readdirSync, rmSync, type Dirent } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileHasher } from './file-hasher.js';
import { LocalStore, type CacheWarning } from './local-store.js';
import { claimCacheDir } from './clean.js';
import { holdSharedLock, isAlive, locksIn } from './process-lock.js';

/** The shared lock every process that opened the cache holds until it closes it (see clean.ts). */
export const OPEN_LOCK = 'open';

/** The local cache of one run: the object store plus the stat index that makes hashing incremental. */
export interface Cache {
  root: string;
  store: LocalStore;
  hasher: FileHasher;
  /** Persists the stat index; call once at the end of a command. */
  close(): Promise<void>;
}

export const CACHE_DIR_ENV = 'HEADSTART_CACHE_DIR';

/** `--cache-dir`, else $HEADSTART_CACHE_DIR, else `.headstart/cache` beside the pipeline file. */
export function cacheDirFor(pipelineDir: string, flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag || env[CACHE_DIR_ENV] || join(pipelineDir, '.headstart', 'cache'));
}

export function openCache(root: string, warn: CacheWarning): Cache {
  mkdirSync(root, { recursive: true });
  claimCacheDir(root);
  removeDeadScratch(join(root, 'tmp'));
  for (const lock of locksIn(join(root, 'locks'), `${OPEN_LOCK}-`)) if (!lock.holder) rmSync(lock.path, { force: true });
  const inUse = holdSharedLock(join(root, 'locks'), OPEN_LOCK);
  const hasher = FileHasher.load(join(root, 'index.json'));
  const store = new LocalStore(root, hasher, warn);
  return { root, store, hasher, close: () => hasher.save().finally(inUse) };
}

/**
 * Scratch directories (LocalStore.tempDir) are named `<label>-<pid>-<8 hex>`; those of processes that died
 * (kill -9) go. Only once the folder is claimed as a cache: in a user's folder these names prove nothing.
 */
function removeDeadScratch(tmp: string): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(tmp, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = Number(/-(\d+)-[0-9a-f]{8}$/.exec(entry.name)?.[1]);
    if (entry.isDirectory() && pid && !isAlive(pid)) rmSync(join(tmp, entry.name), { recursive: true, force: true });
  }
}
