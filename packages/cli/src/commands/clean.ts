import { dirname, resolve } from 'node:path';
import { cacheDirFor, cleanCache } from '@headstart/core';
import { exitWith, failWith, type CommandResult } from '../command-result.js';

export async function cleanCommand(file: string, flags: { cacheDir?: string }): Promise<CommandResult> {
  const cleaned = await cleanCache(cacheDirFor(dirname(resolve(file)), flags.cacheDir));
  if (!cleaned.ok) return failWith(cleaned.error);
  const { root, existed, kept } = cleaned.value;
  if (!existed) console.log(`no cache at ${root}`);
  else if (kept.length > 0) console.log(`removed the cache in ${root} (kept what headstart did not make there: ${kept.join(', ')})`);
  else console.log(`removed ${root}`);
  return exitWith(0);
}
