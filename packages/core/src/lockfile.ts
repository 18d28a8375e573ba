import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EnvKey, StageKey, StageKeyDocument, StepIdentity } from './cache-key.js';
import type { Pipeline } from './pipeline.js';
import { acquireProcessLock } from './process-lock.js';
import type { RunRecord } from './run-record.js';
import { writeFileAtomic } from './util/atomic-write.js';
import { yaml } from './yaml-source.js';
import { sha256, type Sha256Hex } from './util/digest.js';
import { canonicalJson, sortKeys } from './util/canonical-json.js';

/** One stage in `headstart.lock`: what ran, from what, and what it made. Committed, like dvc.lock. */
export interface LockEntry {
  key: StageKey;
  step: StepIdentity;
  params: unknown;
  inputs: Record<string, Sha256Hex>;
  deps: Record<string, Sha256Hex>;
  seed: number;
  /** The hashes of the `${env.…}` values the params name (the values themselves are written nowhere). */
  env?: EnvKey;
  outputs: Record<string, { hash: Sha256Hex; size: number }>;
  durationMs: number;
  metrics?: Record<string, number>;
  info?: Record<string, string | number | boolean>;
  failedChecks?: string[];
}

export interface Lockfile {
  schema: 1;
  stages: Record<string, LockEntry>;
}

const HEADER = '# Written by headstart: what each stage ran from and produced. Commit it.\n';

/** `pipeline.yaml` → `pipeline.lock`; `headstart.yaml` → `headstart.lock`, beside it. */
export function lockfilePath(pipeline: Pick<Pipeline, 'file' | 'dir'>): string {
  const base = pipeline.file.path.split('/').pop()!.replace(/\.ya?ml$/, '');
  return join(pipeline.dir, `${base}.lock`);
}

export function readLockfile(path: string): Lockfile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return emptyLockfile();
  }
  return parseLockfile(text);
}

function emptyLockfile(): Lockfile {
  return { schema: 1, stages: {} };
}

/** A lock file's text as a Lockfile; an unreadable one counts as empty (the next write replaces it). */
export function parseLockfile(text: string): Lockfile {
  try {
    const value = parseLockText(text);
    if (value?.schema === 1 && value.stages && typeof value.stages === 'object') return value as Lockfile;
  } catch {
    // Fall through: not a lock file we can read.
  }
  return emptyLockfile();
}

/**
 * We write JSON (which is YAML too) because the `yaml` parser took a large share of a cached run on a big
 * lock (BENCHMARKS.md, "bench/engine: a fully cached re-run"); a hand-edited YAML file still reads.
 */
function parseLockText(text: string): Partial<Lockfile> | null {
  const body = text.startsWith('#') ? text.slice(text.indexOf('\n') + 1) : text;
  try {
    return JSON.parse(body) as Partial<Lockfile>;
  } catch {
    return yaml().parse(text) as Partial<Lockfile> | null;
  }
}

export function lockEntryFromRecord(record: RunRecord): LockEntry {
  const document: StageKeyDocument = record.keyDocument;
  const outputs = Object.fromEntries(Object.entries(record.outputs).map(([name, ref]) => [name, { hash: ref.hash, size: ref.size }]));
  return {
    key: record.key,
    step: document.step,
    params: document.params,
    inputs: document.inputs,
    deps: document.deps,
    seed: document.seed,
    ...(document.env ? { env: document.env } : {}),
    outputs,
    durationMs: record.durationMs,
    ...(record.metrics ? { metrics: record.metrics } : {}),
    ...(record.info ? { info: record.info } : {}),
    ...(record.failedChecks ? { failedChecks: record.failedChecks } : {}),
  };
}

export function renderLockfile(lockfile: Lockfile): string {
  return `${HEADER}${JSON.stringify(sortKeys(lockfile), null, 2)}\n`;
}

/**
 * Records the stages that ran or were found in the cache, drops stages the pipeline no longer has, keeps
 * the rest, and rewrites the file only when its text changed, so it diffs cleanly.
 */
export async function updateLockfile(pipeline: Pipeline, records: ReadonlyMap<string, RunRecord>, cacheRoot: string): Promise<boolean> {
  const path = lockfilePath(pipeline);
  const release = await acquireProcessLock(join(cacheRoot, 'locks', `lockfile-${sha256(path).slice(0, 16)}.lock`));
  try {
    const before = readLockfile(path);
    const stages: Record<string, LockEntry> = {};
    for (const id of pipeline.order) {
      const record = records.get(id);
      const entry = record ? lockEntryFromRecord(record) : before.stages[id];
      if (entry) stages[id] = entry;
    }
    const after: Lockfile = { schema: 1, stages };
    if (canonicalJson(after) === canonicalJson(before)) return false;
    await writeFileAtomic(path, renderLockfile(after));
    return true;
  } finally {
    release();
  }
}
