import { join, resolve } from 'node:path';
import { materialize, verifyArtifact } from './artifacts.js';
import { KEY_VERSION, stageKey, type ArtifactRef, type StageKey, type StageKeyDocument } from './cache-key.js';
import type { Cache } from './cache.js';
import { declaredParamSources, explainChange, paramSources, type ParamSource } from './explain.js';
import { HeadstartError, stageFailure, type Failure } from './failure.js';
import { withUpstream } from './graph.js';
import { lockfilePath, readLockfile, updateLockfile, type Lockfile } from './lockfile.js';
import type { Pipeline, Stage } from './pipeline.js';
import { adoptPulledRecord } from './pulled-record.js';
import { acquireProcessLock } from './process-lock.js';
import type { RunRecord } from './run-record.js';
import { redactSecrets, type Secrets } from './secrets.js';
import { runStageJob, type StageHooks, type StageJob } from './stage-runner.js';
import type { StepSettings } from './step.js';
import type { Sha256Hex } from './util/digest.js';

export type StageStatus = 'cached' | 'ran' | 'failed' | 'skipped' | 'would-run';

/** What happened to one stage (or, in a dry run, what would). */
export interface StageOutcome {
  id: string;
  status: StageStatus;
  key?: StageKey;
  durationMs: number;
  /** Why it ran or would run, in the user's terms (a param changed, an input changed, forced). */
  why?: string[];
  record?: RunRecord;
  failure?: Failure;
  /** The result came from the remote cache (in a dry run: would come from it). */
  remote?: boolean;
  /** In a dry run: the params its inputs set, and where from (`lr ← find.lr`); absent when none. */
  sources?: ParamSource[];
}

/** After a stage fails: `no-new` lets running stages finish and starts nothing; `keep-going` runs all it can. */
export type FailureMode = 'no-new' | 'keep-going';

export interface Reporter {
  stageStarted(id: string, why: string[]): void;
  stageFinished(outcome: StageOutcome): void;
  log(stage: string, level: 'info' | 'warn', message: string): void;
  progress(stage: string, done: number, total?: number, unit?: string): void;
  warn(message: string): void;
}

/**
 * A shared cache other machines fill (an S3 bucket, say), plugged in by the caller so that core needs
 * no client for it. Whatever arrives is verified by hash on its way into the local store.
 */
export interface RemoteCache {
  /** The result stored remotely under `key`, checked but its objects not yet downloaded; undefined on a miss. */
  lookup(key: StageKey): Promise<RunRecord | undefined>;
  /** Downloads the record's objects into the local store, each verified, then writes the record there; false if any is missing or corrupt. */
  pull(record: RunRecord, cache: Cache): Promise<boolean>;
  /** Uploads a result computed here: its objects first, the record last (the commit). */
  publish(record: RunRecord, cache: Cache): Promise<unknown>;
  /** False for a read-only remote. */
  readonly canPublish: boolean;
}

/**
 * Runs one stage job the executor decided must run: in this process by default, or elsewhere (a queue
 * worker). Whatever it returns must be in the local store (record and objects) when it resolves.
 */
export interface StageRunner {
  run(job: StageJob, stage: Stage, hooks: StageHooks): Promise<RunRecord>;
  /**
   * True when the stage runs on another machine: the result reaches the remote cache from there (the
   * executor does not push it again) and the step's workspace outputs are restored here as on a hit.
   */
  readonly runsElsewhere: boolean;
}

export interface RunOptions {
  cache: Cache;
  reporter: Reporter;
  jobs: number;
  /** Run only these stages and what they depend on. */
  targets?: readonly string[];
  /** Re-run these stages even if cached (`all` for every stage). */
  force?: readonly string[] | 'all';
  /** Decide and report, run nothing, write nothing. */
  dryRun?: boolean;
  failureMode?: FailureMode;
  signal?: AbortSignal;
  /** Before running a stage, pull its result from here if it is there; after running one, push it. */
  remote?: RemoteCache;
  /** Who runs the stages that must run (default: this process). */
  stageRunner?: StageRunner;
  /** The steps' `ctx.settings` when they run in this process (a queue worker has its own). */
  settings?: StepSettings;
}

export interface RunSummary {
  pipeline: string;
  stages: StageOutcome[];
  ok: boolean;
  lockfileChanged: boolean;
}

/** Computes a stage's key document from its upstream stages' output artifacts. Pure but for hashing deps. */
export async function keyDocumentFor(stage: Stage, pipeline: Pipeline, upstreamOutputs: ReadonlyMap<string, Record<string, ArtifactRef>>, cache: Cache): Promise<StageKeyDocument> {
  const inputs: Record<string, Sha256Hex> = {};
  for (const [name, input] of Object.entries(stage.inputs)) {
    const ref = upstreamOutputs.get(input.stage)?.[input.output];
    if (!ref) throw new Error(`bug: ${stage.id} is ready but ${input.stage}.${input.output} has no artifact`);
    inputs[name] = ref.hash;
  }
  const deps: Record<string, Sha256Hex> = {};
  for (const path of stage.deps) {
    try {
      deps[path] = (await cache.hasher.hashPath(resolve(pipeline.dir, path))).hash;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      throw new HeadstartError({ reason: 'missing-dep', at: stage.at(), stage: stage.id, path });
    }
  }
  return { keyVersion: KEY_VERSION, step: stage.identity, params: stage.keyParams, inputs, deps, seed: pipeline.seed, ...(stage.envKey ? { env: stage.envKey } : {}) };
}

/** A hit is a run record whose every output object is present and intact; anything less is a miss. */
export async function lookupRecord(key: StageKey, cache: Cache): Promise<RunRecord | undefined> {
  const record = await cache.store.readRecord(key);
  if (!record) return undefined;
  for (const ref of Object.values(record.outputs)) {
    if (!(await verifyArtifact(ref, cache.store))) {
      await cache.store.removeRecord(key);
      return undefined;
    }
  }
  return record;
}

export async function runPipeline(pipeline: Pipeline, options: RunOptions): Promise<RunSummary> {
  const run = new PipelineRun(pipeline, options);
  const stages = await run.execute();
  const records = new Map(stages.filter((o) => o.record).map((o) => [o.id, o.record!]));
  const lockfileChanged = options.dryRun ? false : await updateLockfile(pipeline, records, options.cache.root);
  return { pipeline: pipeline.name, stages, ok: stages.every((o) => o.status !== 'failed'), lockfileChanged };
}

class PipelineRun {
  private readonly outcomes = new Map<string, StageOutcome>();
  private readonly outputs = new Map<string, Record<string, ArtifactRef>>();
  private readonly lockfile: Lockfile;
  private readonly controller = new AbortController();
  private stopStarting = false;
  private readonly runner: StageRunner;

  constructor(private readonly pipeline: Pipeline, private readonly options: RunOptions) {
    this.runner = options.stageRunner ?? localRunner(options.cache, options.settings ?? {});
    this.lockfile = readLockfile(lockfilePath(pipeline));
    options.signal?.addEventListener('abort', () => {
      this.stopStarting = true;
      this.controller.abort(options.signal?.reason);
    });
  }

  async execute(): Promise<StageOutcome[]> {
    const { pipeline, options } = this;
    const selected = options.targets ? withUpstream(options.targets, (id) => pipeline.stages.get(id)!.upstream) : new Set(pipeline.order);
    const pending = pipeline.order.filter((id) => selected.has(id));
    const running = new Map<string, Promise<void>>();
    while (pending.length > 0 || running.size > 0) {
      for (const id of [...pending]) {
        if (running.size >= Math.max(1, options.jobs)) break;
        const upstream = pipeline.stages.get(id)!.upstream;
        if (!upstream.every((up) => this.outcomes.has(up))) continue;
        pending.splice(pending.indexOf(id), 1);
        const blocked = this.blockedBy(upstream);
        if (blocked || this.stopStarting) {
          this.finish(this.unreached(id, blocked));
          continue;
        }
        running.set(id, this.process(pipeline.stages.get(id)!).then((outcome) => this.withSources(outcome)).then((outcome) => {
          running.delete(id);
          this.finish(outcome);
        }));
      }
      if (running.size === 0) {
        if (pending.length === 0) break;
        continue;
      }
      await Promise.race(running.values());
    }
    return pipeline.order.filter((id) => this.outcomes.has(id)).map((id) => this.outcomes.get(id)!);
  }

  private finish(outcome: StageOutcome): void {
    this.outcomes.set(outcome.id, outcome);
    if (outcome.record) this.outputs.set(outcome.id, outcome.record.outputs);
    if (outcome.status === 'failed' && (this.options.failureMode ?? 'no-new') === 'no-new') this.stopStarting = true;
    this.options.reporter.stageFinished(outcome);
  }

  /** The upstream stage whose missing result keeps this one from running, if any. */
  private blockedBy(upstream: readonly string[]): StageOutcome | undefined {
    return upstream.map((id) => this.outcomes.get(id)!).find((o) => !o.record);
  }

  /** In a dry run, what the stage's wired inputs set, with their values where the upstream result is here. */
  private async withSources(outcome: StageOutcome): Promise<StageOutcome> {
    if (!this.options.dryRun || outcome.status === 'failed') return outcome;
    const sources = await paramSources(this.pipeline.stages.get(outcome.id)!, this.outputs, this.options.cache.store);
    return sources.length > 0 ? { ...outcome, sources } : outcome;
  }

  private unreached(id: string, blocked: StageOutcome | undefined): StageOutcome {
    if (blocked?.status === 'would-run') {
      // Values are left out: the upstream that sets one may still be cached, but a blocked stage is not looked at.
      const sources = declaredParamSources(this.pipeline.stages.get(id)!);
      return { id, status: 'would-run', durationMs: 0, why: [`upstream ${blocked.id} will run`], ...(sources.length > 0 ? { sources } : {}) };
    }
    const why = blocked ? [`upstream ${blocked.id} ${blocked.status}`] : ['the run stopped'];
    return { id, status: 'skipped', durationMs: 0, why };
  }

  private async process(stage: Stage): Promise<StageOutcome> {
    const started = performance.now();
    let key: StageKey | undefined;
    try {
      const document = await keyDocumentFor(stage, this.pipeline, this.outputs, this.options.cache);
      key = stageKey(document);
      const forced = this.isForced(stage.id);
      if (!forced) {
        const hit = await this.hit(stage, key);
        if (hit) return hit;
      }
      const why = forced ? ['forced'] : explainChange(document, this.lockfile.stages[stage.id]);
      if (this.options.dryRun) return (forced ? undefined : await this.remoteLookup(stage, key)) ?? { id: stage.id, status: 'would-run', key, durationMs: 0, why };
      return await this.runLocked(stage, key, document, why, forced);
    } catch (error) {
      return { id: stage.id, status: 'failed', ...(key ? { key } : {}), durationMs: Math.round(performance.now() - started), failure: redactFailure(stageFailure(stage.id, error), stage.secrets) };
    }
  }

  private isForced(id: string): boolean {
    const force = this.options.force;
    return force === 'all' || (force?.includes(id) ?? false);
  }

  private async hit(stage: Stage, key: StageKey): Promise<StageOutcome | undefined> {
    let record = await lookupRecord(key, this.options.cache);
    if (!record) return undefined;
    if (record.unverifiedMetrics && !this.options.dryRun) record = await adoptPulledRecord(record, stage, this.options.cache, (message) => this.options.reporter.warn(message));
    if (!record) return undefined;
    if (stage.step.restore && !this.options.dryRun) {
      const { outputs } = record;
      const output = async (name: string) => {
        const ref = Object.hasOwn(outputs, name) ? outputs[name] : undefined;
        if (!ref) throw new Error(`stage ${stage.id} has no output "${name}"`);
        return materialize(ref, this.options.cache.store);
      };
      const hashes = Object.fromEntries(Object.entries(outputs).map(([name, ref]) => [name, ref.hash]));
      const digest = (path: string) => this.options.cache.hasher.hashPath(path);
      await stage.step.restore({ params: stage.params, output, workdir: this.pipeline.dir, info: record.info ?? {}, hashes, digest });
    }
    return { id: stage.id, status: 'cached', key, durationMs: record.durationMs, record };
  }

  /** Runs the stage holding its key's process lock; another process may have produced it meanwhile. */
  private async runLocked(stage: Stage, key: StageKey, document: StageKeyDocument, why: string[], forced: boolean): Promise<StageOutcome> {
    const { cache, reporter } = this.options;
    const release = await acquireProcessLock(join(cache.root, 'locks', `${key}.lock`), {
      signal: this.controller.signal,
      onWait: (holder) => reporter.warn(`${stage.id}: waiting for ${holder}, which is running this stage on the same cache`),
    });
    try {
      if (!forced) {
        const hit = (await this.hit(stage, key)) ?? (await this.remoteHit(stage, key));
        if (hit) return hit;
      }
      reporter.stageStarted(stage.id, why);
      const job: StageJob = { key, stage: stage.id, uses: stage.uses, workdir: this.pipeline.dir, keyDocument: document, inputs: this.inputArtifacts(stage), outputs: stage.outputs, ...(forced ? { force: true } : {}) };
      const record = await this.runner.run(job, stage, {
        signal: this.controller.signal,
        log: (level, message) => reporter.log(stage.id, level, message),
        progress: (done, total, unit) => reporter.progress(stage.id, done, total, unit),
      });
      cache.hasher.clearMemo();
      // Run elsewhere, the result came through the remote: taken through the hit path, which checks it.
      const result = this.runner.runsElsewhere ? ((await this.hit(stage, key))?.record ?? record) : record;
      if (!this.runner.runsElsewhere) await this.publish(stage, record);
      return { id: stage.id, status: 'ran', key, durationMs: result.durationMs, why, record: result };
    } finally {
      release();
    }
  }

  /** In a dry run: what the remote holds for the key, so that downstream keys can be computed from it. */
  private async remoteLookup(stage: Stage, key: StageKey): Promise<StageOutcome | undefined> {
    const record = await this.fromRemote(stage, (remote) => remote.lookup(key));
    return record && { id: stage.id, status: 'cached', key, durationMs: record.durationMs, record, remote: true };
  }

  /** A remote hit is pulled into the local store, then taken through the local hit path like any other. */
  private async remoteHit(stage: Stage, key: StageKey): Promise<StageOutcome | undefined> {
    const { cache, reporter } = this.options;
    const pulled = await this.fromRemote(stage, async (remote) => {
      const record = await remote.lookup(key);
      return record && (await remote.pull(record, cache)) ? record : undefined;
    });
    if (!pulled) return undefined;
    reporter.log(stage.id, 'info', 'remote hit: pulled from the shared cache');
    const hit = await this.hit(stage, key);
    return hit && { ...hit, remote: true };
  }

  /** The remote is an optimisation: when it fails, the stage runs here and the run goes on. */
  private async fromRemote<T>(stage: Stage, use: (remote: RemoteCache) => Promise<T | undefined>): Promise<T | undefined> {
    const { remote, reporter } = this.options;
    if (!remote) return undefined;
    try {
      return await use(remote);
    } catch (error) {
      reporter.warn(`${stage.id}: remote cache: ${error instanceof Error ? error.message : String(error)}`);
      return undefined;
    }
  }

  private async publish(stage: Stage, record: RunRecord): Promise<void> {
    const { remote, cache, reporter } = this.options;
    if (!remote?.canPublish) return;
    try {
      await remote.publish(record, cache);
    } catch (error) {
      reporter.warn(`${stage.id}: could not push the result to the remote cache: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private inputArtifacts(stage: Stage): Record<string, ArtifactRef> {
    return Object.fromEntries(Object.entries(stage.inputs).map(([name, input]) => [name, this.outputs.get(input.stage)![input.output]!]));
  }
}

/** The default: the stage runs in this process, against the local cache. */
function localRunner(cache: Cache, settings: StepSettings): StageRunner {
  return { runsElsewhere: false, run: (job, stage, hooks) => runStageJob(job, stage.step, cache, hooks, { env: stage.secrets, settings }) };
}

/** A failure's text is printed and kept in `runs/`: the values of `${env.…}` are masked in it. */
function redactFailure(failure: Failure, secrets: Secrets): Failure {
  return 'detail' in failure && typeof failure.detail === 'string' ? { ...failure, detail: redactSecrets(failure.detail, secrets) } : failure;
}

