import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { cacheDirFor, openCache, verifyCache } from '@headstart/core';
import { exitWith, type CommandResult } from '../command-result.js';

/** Re-hashes the whole local cache; exit 1 when anything was corrupt (it has been removed). */
export async function verifyCommand(file: string, flags: { cacheDir?: string }): Promise<CommandResult> {
  const root = cacheDirFor(dirname(resolve(file)), flags.cacheDir);
  if (!existsSync(root)) {
    console.log(`no cache at ${root}`);
    return exitWith(0);
  }
  const cache = openCache(root, (message) => console.error(`warning: ${message}`));
  const report = await verifyCache(cache).finally(() => cache.close());
  if (report.corrupt.length === 0) {
    console.log(`verified ${report.objects} objects: all intact`);
    return exitWith(0);
  }
  for (const hash of report.corrupt) console.log(`corrupt: ${hash}`);
  const objects = report.corrupt.length === 1 ? 'object' : 'objects';
  const records = report.removedRecords === 1 ? 'run record that named it' : 'run records that named them';
  console.log(`verified ${report.objects} objects: removed ${report.corrupt.length} corrupt ${objects} and ${report.removedRecords} ${records}; the stages that made them will run again`);
  return exitWith(1);
}
