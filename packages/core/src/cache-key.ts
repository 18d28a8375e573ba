import { canonicalJson } from './util/canonical-json.js';
import { sha256, type Sha256Hex } from './util/digest.js';

/** A stage's cache key: SHA-256 of its canonical key document. */
export type StageKey = string & { readonly __brand: 'StageKey' };

/** Which code produces a stage's outputs. */
export interface StepIdentity {
  /** The step's declared name. */
  name: string;
  /** Where it came from: a built-in, a local file, or an npm package. */
  source: 'builtin' | 'file' | 'package';
  /** The npm package that ships it (for a local file: the path relative to the pipeline). */
  package: string;
  /** That package's version (empty for a local file, whose code hash says more). */
  packageVersion: string;
  /** The step's own declared version: bumping it invalidates every stage made with the step. */
  version: string;
  /** Fingerprint of the code: the file's SHA-256 for a local step, `packageVersion+version` otherwise. */
  code: string;
}

/** A stage output: a directory, stored as a manifest object that lists its files' object hashes. */
export interface ArtifactRef {
  /** The manifest's hash, which is the directory's content hash. */
  hash: Sha256Hex;
  /** Total bytes of its files. Not part of the key (the hash already says everything). */
  size: number;
}

/**
 * Everything a stage's outputs depend on. Every field is here for a reason; anything that does not change
 * the outputs (durations, the backend, upstream keys) is not. Upstream stages enter only through the
 * content of the artifacts they produced, so an upstream re-run with identical bytes keeps this stage
 * cached (early cut-off).
 */
export interface StageKeyDocument {
  /** Bumped when the composition of this document changes, so an old key can never match a new one. */
  keyVersion: 1;
  /** The step's identity and code fingerprint: new code, new outputs. */
  step: StepIdentity;
  /** Parameters after interpolation, `--set` overrides and the step schema's defaults. */
  params: unknown;
  /** Content hash of each input artifact, by input name. */
  inputs: Record<string, Sha256Hex>;
  /** Content hash of each workspace path the step declared (`deps:`, an image folder), by relative path. */
  deps: Record<string, Sha256Hex>;
  /** The pipeline's seed: the same code and data with another seed trains another model. */
  seed: number;
  /** Only when params name `${env.NAME}` (absent otherwise, so that no other key changes). */
  env?: EnvKey;
}

/**
 * How `${env.NAME}` enters a key: `params` keeps the reference as text and the value enters here as a hash,
 * so a new token makes a new key while the token itself is written nowhere (keys, lock files and run records
 * are committed, shared and uploaded).
 */
export interface EnvKey {
  /** SHA-256 of each variable's value, by name. */
  sha256: Record<string, Sha256Hex>;
  /** Where in `params` the strings that name them are: filled in from the environment when the step runs. */
  paths: (string | number)[][];
}

export const KEY_VERSION = 1 as const;

export function stageKey(document: StageKeyDocument): StageKey {
  return sha256(canonicalJson(document)) as string as StageKey;
}
