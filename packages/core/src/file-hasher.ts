import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { sep } from 'node:path';
import { writeFileAtomic } from './util/atomic-write.js';
import { canonicalJson } from './util/canonical-json.js';
import { sha256, sha256File, type Sha256Hex } from './util/digest.js';

/** One file of a directory artifact or a hashed folder. */
export interface TreeEntry {
  path: string;
  hash: Sha256Hex;
  size: number;
}

export interface PathDigest {
  kind: 'file' | 'dir';
  hash: Sha256Hex;
  size: number;
}

/**
 * [size, mtimeMs, inode, ctimeMs, hash]: the stat a hash was computed at. The ctime is what catches a
 * file rewritten in place with its mtime put back (`touch -r`, `utimes`): no user can set it back.
 */
type IndexEntry = [number, number, number, number, Sha256Hex];

const INDEX_VERSION = 2;
/** A file modified this recently may change again within one mtime tick; its hash is not remembered. */
const RACY_WINDOW_MS = 2000;

/**
 * Content hashes of files, remembered by size + mtime + inode + ctime so that an unchanged file is never read
 * twice, across runs as within one. Directory hashes are memoised for the life of the process, so an
 * input shared by fifty stages is walked once per run.
 */
export class FileHasher {
  private readonly entries: Map<string, IndexEntry>;
  private readonly directoryMemo = new Map<string, Promise<PathDigest>>();
  private dirty = false;

  private constructor(private readonly indexPath: string | undefined, entries: Map<string, IndexEntry>) {
    this.entries = entries;
  }

  /** A hasher that remembers nothing across processes (for one-off comparisons). */
  static inMemory(): FileHasher {
    return new FileHasher(undefined, new Map());
  }

  static load(indexPath: string): FileHasher {
    let entries = new Map<string, IndexEntry>();
    try {
      const stored = JSON.parse(readFileSync(indexPath, 'utf8')) as { version: number; entries: Record<string, IndexEntry> };
      if (stored.version === INDEX_VERSION) entries = new Map(Object.entries(stored.entries));
    } catch {
      // A missing or unreadable index only costs re-hashing.
    }
    return new FileHasher(indexPath, entries);
  }

  /** The file's hash, read from the index when its stat is unchanged. */
  async hashFile(path: string, stat: Stats = statSync(path)): Promise<Sha256Hex> {
    return this.knownHash(path, stat) ?? this.rehash(path, stat);
  }

  /** The remembered hash if the file's stat still matches it (synchronous: no await per unchanged file). */
  private knownHash(path: string, stat: Stats): Sha256Hex | undefined {
    const known = this.entries.get(path);
    return known && known[0] === stat.size && known[1] === stat.mtimeMs && known[2] === stat.ino && known[3] === stat.ctimeMs ? known[4] : undefined;
  }

  /**
   * Re-stamps a file whose hash is known and whose ctime alone changed because we did it (a hard link
   * made to a cache object). Call with the stat taken just before: if that one no longer matched, or
   * the file's size, mtime or inode moved since (a write racing the link), the file is left to be re-hashed.
   */
  restamp(path: string, statBefore: Stats, hash: Sha256Hex): void {
    if (this.knownHash(path, statBefore) !== hash) return;
    const after = statSync(path);
    if (after.size !== statBefore.size || after.mtimeMs !== statBefore.mtimeMs || after.ino !== statBefore.ino) return;
    this.entries.set(path, entryOf(after, hash));
    this.dirty = true;
  }

  private async rehash(path: string, stat: Stats): Promise<Sha256Hex> {
    const hash = await sha256File(path);
    this.remember(path, stat, hash);
    return hash;
  }

  /**
   * Records a file's hash. `immutable` is for files we wrote ourselves and never change (cache
   * objects): they need no guard against a second write within the same mtime tick.
   */
  remember(path: string, stat: Stats, hash: Sha256Hex, immutable = false): void {
    if (!immutable && Date.now() - Math.max(stat.mtimeMs, stat.ctimeMs) < RACY_WINDOW_MS) {
      this.entries.delete(path);
      return;
    }
    this.entries.set(path, entryOf(stat, hash));
    this.dirty = true;
  }

  /** Drops memoised directory digests: a stage that ran may have written into the workspace. */
  clearMemo(): void {
    this.directoryMemo.clear();
  }

  forget(path: string): void {
    if (this.entries.delete(path)) this.dirty = true;
  }

  /** A file's or a directory's content digest; a directory hashes as the manifest of its files. */
  hashPath(path: string): Promise<PathDigest> {
    let digest = this.directoryMemo.get(path);
    if (!digest) {
      digest = this.computePathDigest(path);
      this.directoryMemo.set(path, digest);
      digest.catch(() => this.directoryMemo.delete(path));
    }
    return digest;
  }

  private async computePathDigest(path: string): Promise<PathDigest> {
    const stat = statSync(path);
    if (!stat.isDirectory()) return { kind: 'file', hash: await this.hashFile(path, stat), size: stat.size };
    const entries = await this.treeEntries(path);
    return { kind: 'dir', hash: treeHash(entries), size: entries.reduce((sum, entry) => sum + entry.size, 0) };
  }

  /** Every regular file under `dir`, sorted by relative path, with its hash. */
  async treeEntries(dir: string): Promise<TreeEntry[]> {
    const entries: TreeEntry[] = [];
    for (const file of walkFiles(dir)) {
      const stat = statSync(file.absolute);
      const hash = this.knownHash(file.absolute, stat) ?? (await this.rehash(file.absolute, stat));
      entries.push({ path: file.path, hash, size: stat.size });
    }
    return entries;
  }

  /** The files under `dir` with sizes, for ingesting fresh outputs (never indexed: they are about to move). */
  async treeEntriesUncached(dir: string): Promise<{ path: string; absolute: string; size: number }[]> {
    return walkFiles(dir).map((file) => ({ ...file, size: statSync(file.absolute).size }));
  }

  async save(): Promise<void> {
    if (!this.dirty || !this.indexPath) return;
    const document = { version: INDEX_VERSION, entries: Object.fromEntries(this.entries) };
    await writeFileAtomic(this.indexPath, JSON.stringify(document));
    this.dirty = false;
  }
}

function entryOf(stat: Stats, hash: Sha256Hex): IndexEntry {
  return [stat.size, stat.mtimeMs, stat.ino, stat.ctimeMs, hash];
}

/** The hash of a directory: SHA-256 of the canonical manifest of its files. */
export function treeHash(entries: readonly TreeEntry[]): Sha256Hex {
  return sha256(treeManifest(entries));
}

export function treeManifest(entries: readonly TreeEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return canonicalJson({ type: 'tree', entries: sorted });
}

/**
 * Regular files under `dir` (symbolic links to files included), sorted by their `/`-separated relative
 * path, which is built during the walk rather than with path.relative (a measurable cost at 10,000 files).
 */
export function walkFiles(dir: string, prefix = ''): { path: string; absolute: string }[] {
  const files: { path: string; absolute: string }[] = [];
  const names = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of names) {
    const absolute = `${dir}${sep}${entry.name}`;
    const path = prefix + entry.name;
    if (entry.isDirectory()) {
      for (const file of walkFiles(absolute, `${path}/`)) files.push(file);
    } else if (entry.isFile() || (entry.isSymbolicLink() && statSync(absolute).isFile())) {
      files.push({ path, absolute });
    }
  }
  return files;
}
