import { mkdir, rename, rm } from 'node:fs/promises';
import { tempSibling } from '@headstart/core';
import path from 'node:path';

/**
 * Fills a temporary directory and renames it to `dir`. If another process got there first, its
 * directory is kept and ours discarded ('existed'); callers then re-validate what is there.
 */
export async function writeDirAtomic(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<'created' | 'existed'> {
  await mkdir(path.dirname(dir), { recursive: true });
  const tmp = tempSibling(dir);
  await mkdir(tmp);
  try {
    await fill(tmp);
    await rename(tmp, dir);
    return 'created';
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    if (isCode(error, 'ENOTEMPTY') || isCode(error, 'EEXIST')) return 'existed';
    throw error;
  }
}

export function isCode(error: unknown, code: string): boolean {
  return (error as { code?: unknown } | null)?.code === code;
}
