import { hostname } from 'node:os';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Who is running a stage right now (not to be confused with `headstart.lock`, the committed record of
 * what ran). A lock is a file holding the owner's pid and host; one whose process is gone is released.
 */
export interface ProcessLockOptions {
  /** Called once if the lock is held by someone else, with a description of the holder. */
  onWait?: (holder: string) => void;
  signal?: AbortSignal;
  pollMs?: number;
}

interface Owner {
  pid: number;
  host: string;
}

const HOST = hostname();
/** An owner file still empty after this long was left by a process that died while creating it. */
const EMPTY_OWNER_GRACE_MS = 5000;

export async function acquireProcessLock(path: string, options: ProcessLockOptions = {}): Promise<() => void> {
  mkdirSync(dirname(path), { recursive: true });
  let waited = false;
  for (;;) {
    options.signal?.throwIfAborted();
    if (tryCreate(path)) return () => rmSync(path, { force: true });
    const owner = readOwner(path);
    if (owner === 'gone') continue;
    if (isStale(path, owner)) {
      breakStaleLock(path);
      continue;
    }
    if (!waited) {
      waited = true;
      options.onWait?.(owner === 'unknown' ? 'another process' : `process ${owner.pid} on ${owner.host}`);
    }
    await sleep(options.pollMs ?? 100);
  }
}

/** Who holds the lock at `path`, in words; undefined when nobody does or its owner is gone (a stale lock). */
export function lockHolder(path: string): string | undefined {
  const owner = readOwner(path);
  if (owner === 'gone' || isStale(path, owner)) return undefined;
  return owner === 'unknown' ? 'another process' : `process ${owner.pid} on ${owner.host}`;
}

/**
 * The locks in `dir` (stage locks, lock-file locks, shared locks; those whose names start with `prefix`),
 * each with its live holder in words, or undefined when its owner is gone.
 */
export function locksIn(dir: string, prefix = ''): { path: string; holder: string | undefined }[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((name) => name.startsWith(prefix) && name.endsWith('.lock'))
    .map((name) => ({ path: join(dir, name), holder: lockHolder(join(dir, name)) }));
}

/**
 * A lock any number of processes hold at once, one file each in `dir` (`<name>-<pid>-<random>.lock`):
 * what `clean` looks for to know a process is using the cache. Released by the returned function.
 */
export function holdSharedLock(dir: string, name: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}-${process.pid}-${randomBytes(4).toString('hex')}.lock`);
  writeFileSync(path, JSON.stringify({ pid: process.pid, host: HOST }));
  return () => rmSync(path, { force: true });
}

function tryCreate(path: string): boolean {
  try {
    writeFileSync(path, JSON.stringify({ pid: process.pid, host: HOST }), { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

function readOwner(path: string): Owner | 'unknown' | 'gone' {
  try {
    const text = readFileSync(path, 'utf8');
    return text ? (JSON.parse(text) as Owner) : 'unknown';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'gone' : 'unknown';
  }
}

function isStale(path: string, owner: Owner | 'unknown'): boolean {
  if (owner === 'unknown') {
    try {
      return Date.now() - statSync(path).mtimeMs > EMPTY_OWNER_GRACE_MS;
    } catch {
      return false;
    }
  }
  return owner.host === HOST && !isAlive(owner.pid);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * A process that has exited but whose parent has not collected it yet still takes signal 0; Linux
 * shows it in state Z. Elsewhere (no /proc) it counts as alive until it is collected.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return false;
  }
}

/**
 * Two waiters may find the same dead owner; a `.break` lock lets only one of them remove the file, and
 * it re-reads the owner first so it never removes a lock a live process has just taken.
 */
function breakStaleLock(path: string): void {
  const breaker = `${path}.break`;
  if (!tryCreate(breaker)) {
    const owner = readOwner(breaker);
    if (owner !== 'gone' && isStale(breaker, owner)) rmSync(breaker, { force: true });
    return;
  }
  try {
    const owner = readOwner(path);
    if (owner !== 'gone' && isStale(path, owner)) rmSync(path, { force: true });
  } finally {
    rmSync(breaker, { force: true });
  }
}
