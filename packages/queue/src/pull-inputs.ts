import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifest, type ArtifactRef, type Cache, type Sha256Hex } from '@headstart/core';
import type { S3RemoteCache } from '@headstart/remote';

/** Brings a job's input artifacts from the remote into the local store, each object verified by hash. */
export async function pullInputs(inputs: Record<string, ArtifactRef>, remote: S3RemoteCache, cache: Cache): Promise<void> {
  const staging = await cache.store.tempDir('inputs');
  try {
    for (const ref of Object.values(inputs)) {
      await pullObject(ref.hash, remote, cache, staging);
      const entries = await readManifest(ref.hash, cache.store);
      if (!entries) throw new Error(`input ${ref.hash.slice(0, 12)} is not a tree manifest`);
      for (const entry of entries) await pullObject(entry.hash, remote, cache, staging);
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function pullObject(hash: Sha256Hex, remote: S3RemoteCache, cache: Cache, staging: string): Promise<void> {
  if (await cache.store.verify(hash)) return;
  const download = join(staging, hash);
  const outcome = await remote.store.getBlob(hash, download);
  if (outcome !== 'verified') throw new Error(`input object ${hash.slice(0, 12)} is ${outcome} in the remote cache`);
  await cache.store.put(hash, download);
}
