import { dirname, resolve } from 'node:path';
import { cacheDirFor, collectGarbage, lockfilePath, openCache, readLockfile } from '@headstart/core';
import { exitWith, type CommandResult } from '../command-result.js';

interface GcFlags {
  cacheDir?: string;
  keepDays: number;
  dryRun?: boolean;
}

export async function gcCommand(pipelines: string[], flags: GcFlags): Promise<CommandResult> {
  const files = pipelines.map((file) => resolve(file));
  const lockfiles = files.map((path) => readLockfile(lockfilePath({ file: { path, text: '' }, dir: dirname(path) })));
  const cache = openCache(cacheDirFor(dirname(files[0]!), flags.cacheDir), (message) => console.error(`warning: ${message}`));
  const report = await collectGarbage(cache, lockfiles, { keepDays: flags.keepDays, dryRun: flags.dryRun ?? false }).finally(() => cache.close());
  const verb = flags.dryRun ? 'would remove' : 'removed';
  const snapshots = report.removedSnapshots > 0 ? `, ${report.removedSnapshots} stale training snapshot${report.removedSnapshots === 1 ? '' : 's'}` : '';
  console.log(`${verb} ${report.removedObjects} objects (${(report.freedBytes / 1e6).toFixed(1)} MB)${snapshots} and ${report.removedRecords} run records`);
  return exitWith(0);
}
