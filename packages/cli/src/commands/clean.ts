import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { cacheDirFor } from '@headstart/core';

export async function cleanCommand(file: string, flags: { cacheDir?: string }): Promise<number> {
  const root = cacheDirFor(dirname(resolve(file)), flags.cacheDir);
  if (!existsSync(root)) {
    console.log(`no cache at ${root}`);
    return 0;
  }
  await rm(root, { recursive: true, force: true });
  console.log(`removed ${root}`);
  return 0;
}
