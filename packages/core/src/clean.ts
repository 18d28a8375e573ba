import { existsSync, lstatSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fail, HeadstartError, ok, type Failure, type Result } from './failure.js';
import { locksIn } from './process-lock.js';

/** The Cache Directory Tagging marker (https://bford.info/cachedir/): backup tools skip the folder, and `clean` trusts it. */
export const CACHE_MARKER = 'CACHEDIR.TAG';
const MARKER_SIGNATURE = 'Signature: 8a477f597d28d172789f06886806bc55';

/**
 * What headstart creates in a cache directory, and all that `clean` deletes: the store (local-store.ts),
 * the stat index, the validated-file and validator caches (pipeline.ts), the steps' private files
 * (`downloads/`, `zoo/`: StepContext.cacheDir), training snapshots (`snapshots/`: StepContext.snapshotDir) and the marker.
 */
const CACHE_PARTS = new Set(['objects', 'runs', 'trees', 'tmp', 'locks', 'index.json', 'validators', 'parsed', 'downloads', 'zoo', 'snapshots', CACHE_MARKER]);
/** `index.json.tmp-…`: an atomic write interrupted by a crash. */
const isCachePart = (name: string) => CACHE_PARTS.has(name) || name.startsWith('index.json.tmp-');

/**
 * What loading a pipeline wrote into its cache directory before loading claimed the directory first (before
 * session 6): such a folder is a cache, not a user's.
 */
const LOAD_PARTS = new Set(['parsed', 'validators']);

/**
 * Marks `root` as a cache, where it is one: empty, already marked, a cache from before the marker, or
 * holding only what an older headstart's pipeline loading wrote there. A user's folder is refused (a HeadstartError)
 * and left unmarked, so that `clean` never trusts it later.
 */
export function claimCacheDir(root: string): void {
  if (hasMarker(root)) return;
  const entries = readdirSync(root);
  const problem = entries.every((name) => LOAD_PARTS.has(name)) ? undefined : whyNotAnOldCache(entries);
  if (problem) throw new HeadstartError({ reason: 'not-a-cache', path: root, detail: problem });
  const marker = join(root, CACHE_MARKER);
  if (existsSync(marker)) return;
  writeFileSync(marker, `${MARKER_SIGNATURE}\n# This file is a cache directory tag created by headstart.\n# For information about cache directory tags, see https://bford.info/cachedir/\n`);
}

/**
 * Why an unmarked folder holding `entries` is not a cache made before the marker existed; undefined when it
 * is one. Generic names alone (tmp, downloads, runs) are a user's as often as ours: index.json or objects/
 * must be there too.
 */
function whyNotAnOldCache(entries: readonly string[]): string | undefined {
  const foreign = entries.filter((name) => !isCachePart(name));
  if (foreign.length > 0) return `no ${CACHE_MARKER}, and it holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}`;
  if (entries.includes('index.json') || entries.includes('objects')) return undefined;
  return entries.length === 0 ? `no ${CACHE_MARKER}` : `no ${CACHE_MARKER}, index.json or objects/`;
}

export interface CleanReport {
  root: string;
  /** False when there was no cache to clean. */
  existed: boolean;
  /** Entries in the directory that are not headstart's, left in place (the directory with them). */
  kept: string[];
}

/**
 * Deletes a local cache: only a directory headstart made (it carries the marker), only the parts
 * headstart makes in it, and never while a live process uses it. A cache made before the marker
 * existed is recognised by holding nothing but cache parts, index.json or objects/ among them.
 */
export async function cleanCache(root: string): Promise<Result<CleanReport, Failure>> {
  if (!existsSync(root)) return ok({ root, existed: false, kept: [] });
  if (!statSync(root).isDirectory()) return fail({ reason: 'not-a-cache', path: root, detail: 'it is not a directory' });
  const entries = readdirSync(root);
  const foreign = entries.filter((name) => !isCachePart(name));
  const problem = hasMarker(root) ? undefined : whyNotAnOldCache(entries);
  if (problem) return fail({ reason: 'not-a-cache', path: root, detail: problem });
  const holder = locksIn(join(root, 'locks')).find((lock) => lock.holder)?.holder;
  if (holder) return fail({ reason: 'cache-in-use', path: root, holder });
  // The marker goes last: an interrupted clean leaves a directory `clean` still recognises.
  const parts = entries.filter(isCachePart).sort((a, b) => Number(a === CACHE_MARKER) - Number(b === CACHE_MARKER));
  for (const name of parts) await rm(join(root, name), { recursive: true, force: true });
  if (foreign.length === 0 && !lstatSync(root).isSymbolicLink()) rmdirSync(root);
  return ok({ root, existed: true, kept: foreign });
}

function hasMarker(root: string): boolean {
  try {
    return readFileSync(join(root, CACHE_MARKER), 'utf8').startsWith(MARKER_SIGNATURE);
  } catch {
    return false;
  }
}

