import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileHasher } from './file-hasher.js';
import { LocalStore, type CacheWarning } from './local-store.js';
import { markAsCache } from './clean.js';
import { holdSharedLock, isAlive, lockHolder } from './process-lock.js';

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
  markAsCache(root);
  removeDeadScratch(join(root, 'tmp'));
  removeStaleLocks(join(root, 'locks'), OPEN_LOCK);
  const inUse = holdSharedLock(join(root, 'locks'), OPEN_LOCK);
  const hasher = FileHasher.load(join(root, 'index.json'));
  const store = new LocalStore(root, hasher, warn);
  return { root, store, hasher, close: () => hasher.save().finally(inUse) };
}

/** Scratch directories are named `<label>-<pid>-<random>`; those of processes that died (kill -9) go. */
function removeDeadScratch(tmp: string): void {
  let names: string[];
  try {
    names = readdirSync(tmp);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/-(\d+)-[0-9a-f]{8}$/.exec(name)?.[1]);
    if (pid && !isAlive(pid)) rmSync(join(tmp, name), { recursive: true, force: true });
  }
}

/** Shared locks of processes that died without closing the cache. */
function removeStaleLocks(locks: string, name: string): void {
  let names: string[];
  try {
    names = readdirSync(locks);
  } catch {
    return;
  }
  for (const lock of names.filter((n) => n.startsWith(`${name}-`) && n.endsWith('.lock'))) {
    if (!lockHolder(join(locks, lock))) rmSync(join(locks, lock), { force: true });
  }
}
