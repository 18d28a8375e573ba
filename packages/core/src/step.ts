/** The step API: what a built-in, local or third-party step implements. */

export type JsonSchema = Record<string, unknown>;

export interface StepLogger {
  info(message: string): void;
  warn(message: string): void;
}

/**
 * How the user wants steps run on this machine (`--backend`, `--workers`, or their environment variables,
 * read by the CLI): plain values, not part of any key, since results do not depend on them.
 */
export interface StepSettings {
  /** The ML backend to use by name (`auto` or absent: the fastest that loads). */
  readonly backend?: string;
  /** Threads an ML step may use, the calling one included (absent: one per core). */
  readonly threads?: number;
}

export interface StepContext<P = Record<string, unknown>> {
  /** The stage's id in the pipeline file. */
  readonly stage: string;
  /** Parameters after interpolation, overrides and the schema's defaults. */
  readonly params: P;
  /** Read-only path of each input artifact (a directory, or a file for a single-file artifact). */
  readonly inputs: Readonly<Record<string, string>>;
  /** An empty directory per declared output; what the step leaves there becomes the artifact. */
  readonly outputs: Readonly<Record<string, string>>;
  /** The pipeline file's directory; relative paths in params resolve against it. */
  readonly workdir: string;
  /** A scratch directory, removed after the stage. */
  readonly tmpdir: string;
  /** The local cache directory, for steps that keep private derived files (converted models, downloads). */
  readonly cacheDir: string;
  /**
   * This stage key's directory for resumable state (training snapshots): not created until the step writes
   * there, left in place when the process dies so that the next run of the same key finds it, removed once
   * the stage succeeds, and by `gc` when no live process runs the key.
   */
  readonly snapshotDir: string;
  /** The pipeline's seed (part of every stage's key). */
  readonly seed: number;
  /** Aborted on Ctrl-C or when the run stops; long loops should check it. */
  readonly signal: AbortSignal;
  readonly log: StepLogger;
  readonly settings: StepSettings;
  /** Reports progress of the stage's long loop; shown on a TTY only. */
  progress(done: number, total?: number, unit?: string): void;
}

/** What a step may return besides its output files. Both end up in the run record and the lock file. */
export interface StepResult {
  /** Numbers worth comparing across runs (accuracy, loss). */
  metrics?: Record<string, number>;
  /** Facts about how the stage ran (the ML backend, the device). Not part of the key. */
  info?: Record<string, string | number | boolean>;
  /**
   * Quality gates that did not pass (`accuracy 0.81 is below fail_under 0.85`), one line each. The
   * stage's outputs are still cached; the run, and every later run that finds them cached, exits 3.
   */
  failedChecks?: string[];
}

export interface RestoreContext<P = Record<string, unknown>> {
  readonly params: P;
  /**
   * The directory of a cached output artifact, hard-linked out of the cache on first ask. Ask only for
   * an output whose workspace copy must be replaced: a folder of 10,000 files costs 10,000 links.
   */
  output(name: string): Promise<string>;
  readonly workdir: string;
  /** The `info` the step returned when it ran. */
  readonly info: Readonly<Record<string, string | number | boolean>>;
  /** Each output's artifact hash (a folder's hash is `treeHash` of its files). */
  readonly hashes: Readonly<Record<string, string>>;
  /** Digest of a workspace file or folder through the cache's stat index: unchanged files are not re-read. */
  digest(path: string): Promise<{ kind: 'file' | 'dir'; hash: string; size: number }>;
}

/** A path relative to the pipeline's directory, and where in `with:` it is written (for the error). */
export interface WorkspacePath {
  path: string;
  /** Keys and indexes under `with:`, e.g. `['outs', 0]`. */
  param: readonly (string | number)[];
}

export interface SummaryContext<P = Record<string, unknown>> {
  readonly params: P;
  /** Read-only directory of each output artifact, verified against its hash. */
  readonly outputs: Readonly<Record<string, string>>;
}

/** A param an input's artifact sets: the number `field` of the JSON file `file` in it, times the param `scale`. */
export interface ParamInput {
  input: string;
  file: string;
  field: string;
  /** A number param that multiplies the value; absent: the value is used as it is. */
  scale?: string;
}

export interface StepDefinition<P = Record<string, unknown>> {
  name: string;
  /** Bump when the step's behaviour changes: it is part of every key made with this step. */
  version: string;
  description?: string;
  /** JSON Schema (draft 2020-12) of the `with:` parameters; defaults are filled in before hashing. */
  params: JsonSchema;
  /** Input names the step reads; `inputs:` in a stage may only use these and `optionalInputs`. */
  inputs?: readonly string[];
  /** Inputs a stage may wire or leave out (`lr: find.lr`); a wired one enters the key like any input. */
  optionalInputs?: readonly string[];
  /**
   * Params an optional input sets when wired, by param name, so that `status` and `--dry-run` can say where
   * a value comes from (`lr ← find.lr 0.003 × lr_scale 0.5`). Only describes: the step itself reads the input.
   */
  paramInputs?: Readonly<Record<string, ParamInput>>;
  /** Output names; a function when they depend on the parameters (the shell step's `outs:`). */
  outputs: readonly string[] | ((params: P) => readonly string[]);
  /**
   * Workspace paths (relative to the pipeline's directory) whose content is part of the key,
   * hashed incrementally: the shell step's `deps:`, an image folder.
   */
  deps?: (params: P) => readonly string[];
  /**
   * Every workspace path the step reads or writes (its `deps`, the files it deletes and writes like the
   * shell step's `outs:`), so that core can refuse, before anything runs, one outside the pipeline's
   * directory or on top of the files headstart keeps there (see workspace-paths.ts).
   */
  workspacePaths?: (params: P) => readonly WorkspacePath[];
  run(ctx: StepContext<P>): Promise<StepResult | void>;
  /** Called when the stage is a cache hit, to put workspace copies of its outputs back. */
  restore?(ctx: RestoreContext<P>): Promise<void>;
  /**
   * Reads the stage's metrics (and failed checks) back from its outputs, as `run` returned them. A result
   * pulled from a remote cache that does not authenticate its records takes its numbers from here, from
   * objects verified by hash, never from the record; without it, such a result's metrics are dropped.
   */
  summarize?(ctx: SummaryContext<P>): Promise<Pick<StepResult, 'metrics' | 'failedChecks'>>;
}

/** Declares a step. Returns the definition unchanged; the type parameter types `ctx.params`. */
export function defineStep<P = Record<string, unknown>>(definition: StepDefinition<P>): StepDefinition<P> {
  if (!/^[a-z][a-z0-9-]*$/.test(definition.name)) {
    throw new Error(`step name "${definition.name}" must be kebab-case`);
  }
  if (typeof definition.run !== 'function') throw new Error(`step ${definition.name} has no run()`);
  for (const [param, source] of Object.entries(definition.paramInputs ?? {})) {
    if (!definition.optionalInputs?.includes(source.input)) throw new Error(`step ${definition.name}: param ${param} is set by input ${source.input}, which is not in optionalInputs`);
  }
  return definition;
}

export function outputNames<P>(step: StepDefinition<P>, params: P): readonly string[] {
  return typeof step.outputs === 'function' ? step.outputs(params) : step.outputs;
}

/**
 * A step of any parameter type, as registries, resolvers and the executor hold them. Each step checks its
 * own parameters against its JSON Schema before it runs, so the static type cannot say more than this.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- P appears in parameter positions, so no narrower type accepts every step
export type AnyStep = StepDefinition<any>;

/** A step a registry can hand out without loading its module (and whatever heavy library it imports). */
export interface BuiltinStep {
  load(): Promise<AnyStep>;
}

/** Built-in steps by name, plus the identity of the package that ships them. */
export interface StepRegistry {
  packageName: string;
  packageVersion: string;
  steps: ReadonlyMap<string, BuiltinStep>;
}
