import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifest } from './artifacts.js';
import type { Cache } from './cache.js';
import { listObjects, readRecords, safeReaddir } from './gc.js';
import { sha256File, type Sha256Hex } from './util/digest.js';

export interface VerifyReport {
  /** Objects re-hashed. */
  objects: number;
  /** Objects whose bytes no longer match their name; removed. */
  corrupt: Sha256Hex[];
  /** Run records that named a corrupt object (as an output or inside one); removed, so the stage runs again. */
  removedRecords: number;
}

/**
 * Re-hashes every object in the cache, trusting no stat index, and removes each object whose bytes no
 * longer match its name, with the materialized trees and run records that name it. What stays is intact.
 */
export async function verifyCache(cache: Cache): Promise<VerifyReport> {
  const corrupt = new Set<Sha256Hex>();
  const objects = listObjects(cache.root);
  for (const { hash, path } of objects) {
    const before = statSync(path);
    const actual = await sha256File(path);
    if (actual === hash) {
      cache.hasher.remember(path, before, actual, true);
      continue;
    }
    corrupt.add(hash as Sha256Hex);
    cache.hasher.forget(path);
    await rm(path, { force: true });
  }
  const report: VerifyReport = { objects: objects.length, corrupt: [...corrupt].sort(), removedRecords: 0 };
  if (corrupt.size === 0) return report;
  const damaged = async (root: string) => corrupt.has(root as Sha256Hex) || ((await readManifest(root as Sha256Hex, cache.store)) ?? []).some((entry) => corrupt.has(entry.hash));
  for (const tree of safeReaddir(join(cache.root, 'trees'))) {
    if (await damaged(tree)) await rm(join(cache.root, 'trees', tree), { recursive: true, force: true });
  }
  for (const { path, record } of await readRecords(cache.root)) {
    const outputs = Object.values(record.outputs).map((ref) => ref.hash);
    let bad = false;
    for (const output of outputs) bad ||= await damaged(output);
    if (!bad) continue;
    await rm(path, { force: true });
    report.removedRecords++;
  }
  return report;
}

