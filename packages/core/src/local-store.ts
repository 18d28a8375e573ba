import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, statSync } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { StageKey } from './cache-key.js';
import type { FileHasher } from './file-hasher.js';
import type { ObjectStore } from './object-store.js';
import { isRunRecord, type RunRecord } from './run-record.js';
import { fsyncFile, tempSibling, writeFileAtomic } from './util/atomic-write.js';
import type { Sha256Hex } from './util/digest.js';

export type CacheWarning = (message: string) => void;

/**
 * The cache directory: `objects/ab/cdef…` (read-only, content-addressed), `runs/ab/<key>.json`,
 * `trees/<hash>/` (objects hard-linked back into directories for steps to read), `tmp/`, `locks/`.
 */
export class LocalStore implements ObjectStore {
  constructor(
    readonly root: string,
    private readonly hasher: FileHasher,
    private readonly warn: CacheWarning,
  ) {}

  objectPath(hash: Sha256Hex): string {
    return join(this.root, 'objects', hash.slice(0, 2), hash.slice(2));
  }

  recordPath(key: StageKey): string {
    return join(this.root, 'runs', key.slice(0, 2), `${key}.json`);
  }

  /** A fresh private directory under the cache (same file system, so its files can be renamed in). */
  async tempDir(label: string): Promise<string> {
    const dir = join(this.root, 'tmp', `${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async has(hash: Sha256Hex): Promise<boolean> {
    return this.verify(hash);
  }

  /**
   * Whether the object's bytes still match its name. The stat index makes this a stat call for an
   * untouched object; a modified one is re-hashed, and if it no longer matches it is deleted.
   */
  async verify(hash: Sha256Hex): Promise<boolean> {
    const path = this.objectPath(hash);
    let stat;
    try {
      stat = statSync(path);
    } catch {
      return false;
    }
    if ((await this.hasher.hashFile(path, stat)) === hash) return true;
    this.warn(`cache object ${hash.slice(0, 12)} is corrupt (its content no longer matches its hash); removing it`);
    this.hasher.forget(path);
    await rm(path, { force: true });
    return false;
  }

  async get(hash: Sha256Hex, destination: string): Promise<boolean> {
    if (!(await this.verify(hash))) return false;
    await copyFile(this.objectPath(hash), destination);
    return true;
  }

  /**
   * Hard-links an intact object to `destination` (a copy where links are impossible). Linking changes the
   * object's ctime, so its stamp in the stat index is renewed here rather than costing a re-hash later.
   */
  async linkObject(hash: Sha256Hex, destination: string): Promise<void> {
    const path = this.objectPath(hash);
    const before = statSync(path);
    try {
      await link(path, destination);
    } catch {
      await copyFile(path, destination);
      return;
    }
    this.hasher.restamp(path, before, hash);
  }

  async put(hash: Sha256Hex, source: string): Promise<void> {
    const path = this.objectPath(hash);
    if (existsSync(path) && (await this.verify(hash))) {
      await rm(source, { force: true });
      return;
    }
    await mkdir(dirname(path), { recursive: true });
    // chmod and rename act on a link's target and on the link: neither may reach a file outside the cache.
    const stat = lstatSync(source);
    if (stat.isSymbolicLink()) throw new Error(`refusing to store the symbolic link ${source} as an object`);
    // A file with other hard links shares its inode with them (a step's `ln data.txt out/`): chmod would
    // make the user's file read-only, and writing to it would change the object. Store a copy instead.
    const own = stat.nlink > 1 ? tempSibling(source) : source;
    if (own !== source) await copyFile(source, own);
    await fsyncFile(own);
    chmodSync(own, 0o444);
    await rename(own, path);
    if (own !== source) await rm(source, { force: true });
    this.hasher.remember(path, statSync(path), hash, true);
  }

  async putBytes(hash: Sha256Hex, bytes: string | Uint8Array): Promise<void> {
    if (existsSync(this.objectPath(hash)) && (await this.verify(hash))) return;
    const staging = join(await this.tempDir('object'), 'data');
    await writeFile(staging, bytes);
    await this.put(hash, staging);
    await rm(dirname(staging), { recursive: true, force: true });
  }

  async readRecord(key: StageKey): Promise<RunRecord | undefined> {
    const path = this.recordPath(key);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const record: unknown = JSON.parse(text);
      if (isRunRecord(record, key)) return record;
    } catch {
      // fall through: treated like a record that failed validation
    }
    this.warn(`run record ${key.slice(0, 12)} is unreadable; removing it`);
    await rm(path, { force: true });
    return undefined;
  }

  async writeRecord(record: RunRecord): Promise<void> {
    const path = this.recordPath(record.key);
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, JSON.stringify(record, null, 2));
  }

  async removeRecord(key: StageKey): Promise<void> {
    await rm(this.recordPath(key), { force: true });
  }
}
