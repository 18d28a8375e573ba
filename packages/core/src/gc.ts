import { readdirSync, statSync, type Stats } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cache } from './cache.js';
import { readManifest } from './artifacts.js';
import type { Lockfile } from './lockfile.js';
import { isRunRecord, type RunRecord } from './run-record.js';
import { removeStaleSnapshots } from './snapshots.js';
import type { Sha256Hex } from './util/digest.js';

export interface GcOptions {
  /** Run records newer than this are kept (with their objects) even if no lock file names them. */
  keepDays: number;
  dryRun: boolean;
}

export interface GcReport {
  removedObjects: number;
  removedRecords: number;
  /** Training snapshots of stage keys no live process runs (killed runs') that nothing wrote in for `keepDays` (and at least an hour). */
  removedSnapshots: number;
  freedBytes: number;
}

/** Objects written within this window may belong to a stage still running elsewhere: never collected. */
const YOUNG_OBJECT_MS = 60 * 60 * 1000;

/** Removes objects and run records that no lock file references and no recent run produced, and stale snapshots. */
export async function collectGarbage(cache: Cache, lockfiles: readonly Lockfile[], options: GcOptions): Promise<GcReport> {
  const lockedKeys = new Set(lockfiles.flatMap((lockfile) => Object.values(lockfile.stages).map((entry) => entry.key as string)));
  const lockedOutputs = lockfiles.flatMap((lockfile) => Object.values(lockfile.stages).flatMap((entry) => Object.values(entry.outputs).map((o) => o.hash)));
  const cutoff = Date.now() - options.keepDays * 24 * 60 * 60 * 1000;
  const snapshots = await removeStaleSnapshots(cache.root, Math.min(cutoff, Date.now() - YOUNG_OBJECT_MS), options.dryRun);
  const report: GcReport = { removedObjects: 0, removedRecords: 0, removedSnapshots: snapshots.removed, freedBytes: snapshots.bytes };
  const keptRoots = new Set<Sha256Hex>(lockedOutputs);
  for (const { path, record } of await readRecords(cache.root)) {
    if (lockedKeys.has(record.key) || Date.parse(record.createdAt) >= cutoff) {
      for (const output of Object.values(record.outputs)) keptRoots.add(output.hash);
    } else {
      report.removedRecords++;
      if (!options.dryRun) await rm(path, { force: true });
    }
  }
  const keep = new Set<string>(keptRoots);
  for (const root of keptRoots) for (const entry of (await readManifest(root, cache.store)) ?? []) keep.add(entry.hash);

  for (const { hash, path, stat } of listObjects(cache.root)) {
    if (keep.has(hash) || stat.mtimeMs > Date.now() - YOUNG_OBJECT_MS) continue;
    report.removedObjects++;
    report.freedBytes += stat.size;
    if (!options.dryRun) {
      await rm(path, { force: true });
      cache.hasher.forget(path);
    }
  }
  if (!options.dryRun) {
    for (const tree of safeReaddir(join(cache.root, 'trees'))) {
      if (!keep.has(tree)) await rm(join(cache.root, 'trees', tree), { recursive: true, force: true });
    }
  }
  return report;
}

export async function readRecords(root: string): Promise<{ path: string; record: RunRecord }[]> {
  const records: { path: string; record: RunRecord }[] = [];
  for (const shard of safeReaddir(join(root, 'runs'))) {
    for (const name of safeReaddir(join(root, 'runs', shard))) {
      const path = join(root, 'runs', shard, name);
      try {
        const record: unknown = JSON.parse(await readFile(path, 'utf8'));
        if (isRunRecord(record, name.replace(/\.json$/, ''))) records.push({ path, record });
      } catch {
        // unreadable records are left for readRecord to report and remove
      }
    }
  }
  return records;
}

export function listObjects(root: string): { hash: string; path: string; stat: Stats }[] {
  return safeReaddir(join(root, 'objects')).flatMap((shard) =>
    safeReaddir(join(root, 'objects', shard)).map((rest) => {
      const path = join(root, 'objects', shard, rest);
      return { hash: shard + rest, path, stat: statSync(path) };
    }),
  );
}

/** The names in `dir`; none when it does not exist. */
export function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
