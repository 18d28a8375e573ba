import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ArtifactRef } from './cache-key.js';
import { treeManifest, type FileHasher, type TreeEntry } from './file-hasher.js';
import type { LocalStore } from './local-store.js';
import { tempSibling } from './util/atomic-write.js';
import { sha256, sha256File, type Sha256Hex } from './util/digest.js';
import { copyResolvingLinks } from './workspace-paths.js';

/**
 * Moves every file of a finished output directory into the object store and stores the directory's
 * manifest as one more object. The manifest's hash is the artifact's identity.
 */
export async function ingestDirectory(dir: string, store: LocalStore, hasher: FileHasher): Promise<ArtifactRef> {
  await replaceLinksWithContent(dir);
  const files = await hasher.treeEntriesUncached(dir);
  const entries: TreeEntry[] = [];
  for (const file of files) {
    const hash = await sha256File(file.absolute);
    entries.push({ path: file.path, hash, size: file.size });
    await store.put(hash, file.absolute);
  }
  const manifest = treeManifest(entries);
  const hash = sha256(manifest);
  await store.putBytes(hash, manifest);
  return { hash, size: entries.reduce((sum, entry) => sum + entry.size, 0) };
}

/**
 * A step may leave symbolic links among its outputs. Storing one would move the link into the store and
 * make its target read-only; a link to something inside the output directory becomes a copy of it, and
 * one that points elsewhere fails the stage.
 */
async function replaceLinksWithContent(dir: string, root = dir): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      await replaceLinksWithContent(path, root);
    } else if (entry.isSymbolicLink()) {
      const copy = tempSibling(path);
      await copyResolvingLinks(path, copy, root, 'its output directory');
      await rm(path);
      await rename(copy, path);
    }
  }
}

export async function readManifest(hash: Sha256Hex, store: LocalStore): Promise<TreeEntry[] | undefined> {
  if (!(await store.verify(hash))) return undefined;
  const manifest = JSON.parse(await readFile(store.objectPath(hash), 'utf8')) as { type: string; entries: TreeEntry[] };
  return manifest.type === 'tree' ? manifest.entries : undefined;
}

/** Whether every object of the artifact is present and intact (a stat each when untouched). */
export async function verifyArtifact(ref: ArtifactRef, store: LocalStore): Promise<boolean> {
  const entries = await readManifest(ref.hash, store);
  let intact = entries !== undefined;
  for (const entry of entries ?? []) {
    if (!(await store.verify(entry.hash))) intact = false;
  }
  // Its materialized directory shares inodes with the objects, so it is as damaged as they are.
  if (!intact) await rm(join(store.root, 'trees', ref.hash), { recursive: true, force: true });
  return intact;
}

/**
 * The artifact as a read-only directory a step can read: `trees/<hash>/`, built once from hard links to
 * the objects (copies where links are impossible) and renamed into place whole.
 */
export async function materialize(ref: ArtifactRef, store: LocalStore): Promise<string> {
  const target = join(store.root, 'trees', ref.hash);
  if (existsSync(target)) return target;
  const entries = await readManifest(ref.hash, store);
  if (!entries) throw new Error(`artifact ${ref.hash} is missing from the cache`);
  const staging = await store.tempDir('tree');
  for (const entry of entries) {
    const destination = join(staging, entry.path);
    await mkdir(dirname(destination), { recursive: true });
    await store.linkObject(entry.hash, destination);
  }
  await mkdir(dirname(target), { recursive: true });
  try {
    await rename(staging, target);
  } catch (error) {
    // Another process materialized the same tree first: theirs is identical.
    await rm(staging, { recursive: true, force: true });
    if (!existsSync(target)) throw error;
  }
  return target;
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
