import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { ErrorObject } from 'ajv';
import type { EnvKey, StepIdentity } from './cache-key.js';
import { cacheDirFor } from './cache.js';
import { claimCacheDir } from './clean.js';
import type { Failure, Result, SourceFile, SourceRange } from './failure.js';
import { fail, failureMessage, HeadstartError, ok } from './failure.js';
import { interpolateParams, type InterpolationProblem, type Scope } from './interpolate.js';
import { findCycle, topologicalOrder } from './graph.js';
import { expandMatrix, plainInstances, usesMatrix, type MatrixValue, type StageInput, type StageInstance } from './matrix.js';
import { describeSchemaError } from './schema-errors.js';
import { envKey, keyedParams, secretsOf, type Secrets } from './secrets.js';
import { validatorFor } from './schema-validator.js';
import { outputNames, type AnyStep, type StepRegistry } from './step.js';
import { resolveStep, type StepResolution } from './step-resolver.js';
import { closestMatch, didYouMean } from './util/suggest.js';
import { unsafeWorkspacePaths, workspaceBoundary, type WorkspaceBoundary } from './workspace-paths.js';
import { FORBIDDEN_KEYS, locate, parseYaml, readSourceFile, rememberParsed, type ParsedYaml, type YamlPath } from './yaml-source.js';

export interface Stage {
  /** The stage's name, or for a stage a matrix expands, `name@axis=label,…` (see matrix.ts). */
  id: string;
  /** The stage's name in the pipeline file (the same for all instances of a matrix stage). */
  name: string;
  /** This instance's matrix values by axis; empty for a stage no matrix expands. */
  matrix: Readonly<Record<string, MatrixValue>>;
  uses: string;
  step: AnyStep;
  identity: StepIdentity;
  /** Parameters after interpolation, overrides and the step schema's defaults: what the step runs with. */
  params: Record<string, unknown>;
  /** `params` as keys, lock files and run logs hold them: each string naming `${env.…}` keeps the reference. */
  keyParams: Record<string, unknown>;
  /** How the `${env.…}` values enter the key; undefined when the params name none. */
  envKey?: EnvKey;
  /** The values of the environment variables the params name, to run with and to mask in what is printed. */
  secrets: Secrets;
  inputs: Record<string, StageInput>;
  /** Stages that must finish first although no data flows from them. */
  needs: readonly string[];
  /** Upstream stage ids: those of `inputs` and `needs`, sorted. */
  upstream: string[];
  outputs: readonly string[];
  /** Workspace paths, relative to the pipeline's directory, whose content is part of the key. */
  deps: readonly string[];
  /** Where the stage is declared (its key in the file); computed on demand, errors only. */
  at(): SourceRange;
}

export interface Pipeline {
  file: SourceFile;
  dir: string;
  name: string;
  seed: number;
  /** The shared cache the file names (`remote:`); flags and the environment take precedence. */
  remote?: string;
  stages: ReadonlyMap<string, Stage>;
  /** Stage ids in a topological order (upstream first, ties by file order). */
  order: readonly string[];
}

export interface LoadOptions {
  registry: StepRegistry;
  /** `--set` overrides: `params.x=value` or `stage.key.sub=value`. */
  overrides?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** Where compiled schema validators and validated pipeline files are kept between runs. */
  cacheDir?: string;
}

interface RawStage {
  uses: string;
  with?: Record<string, unknown>;
  matrix?: Record<string, unknown>;
  inputs?: Record<string, string>;
  needs?: string[];
}

interface RawPipeline {
  name?: string;
  seed?: number;
  remote?: string;
  params?: Record<string, unknown>;
  matrix?: Record<string, unknown>;
  stages: Record<string, RawStage>;
}

/** What building each stage needs besides the stage itself. */
interface BuildContext {
  parsed: ParsedYaml;
  scope: Scope;
  dir: string;
  registry: StepRegistry;
  validatorDir: string | undefined;
  failures: Failure[];
  /** Resolved `uses:` values, so the instances of a matrix stage resolve their step once. */
  steps: Map<string, Promise<StepResolution>>;
  /** What a stage's workspace paths must stay inside of and away from. */
  boundary: WorkspaceBoundary;
}

const pipelineSchema = createRequire(import.meta.url)('../schema/pipeline.schema.json') as object;

export async function loadPipeline(path: string, options: LoadOptions): Promise<Result<Pipeline>> {
  const file = await readSourceFile(resolve(path));
  if (!file.ok) return file;
  const parsed = parseYaml(file.value, options.cacheDir);
  if (!parsed.ok) return parsed;
  const refused = options.cacheDir ? claimForLoading(options.cacheDir) : undefined;
  if (refused) return fail([refused]);
  const analyzed = await analyze(parsed.value, options);
  if (analyzed.ok && options.cacheDir) await rememberParsed(parsed.value, options.cacheDir);
  return analyzed;
}

/** Loading writes validators and validated files into the cache directory: a folder that is not a cache is refused first. */
function claimForLoading(cacheDir: string): Failure | undefined {
  mkdirSync(cacheDir, { recursive: true });
  try {
    claimCacheDir(cacheDir);
    return undefined;
  } catch (error) {
    if (error instanceof HeadstartError) return error.failure;
    throw error;
  }
}

async function analyze(parsed: ParsedYaml, options: LoadOptions): Promise<Result<Pipeline>> {
  const validatorDir = options.cacheDir && join(options.cacheDir, 'validators');
  const shapeErrors = checkShape(parsed, validatorDir);
  if (shapeErrors.length > 0) return fail(shapeErrors);
  const raw = structuredClone(parsed.value) as RawPipeline;
  const overrideErrors = applyOverrides(raw, options.overrides ?? []);
  if (overrideErrors.length > 0) return fail(overrideErrors);

  const dir = dirname(parsed.file.path);
  const scope = { params: raw.params ?? {}, env: options.env ?? process.env };
  const instances = usesMatrix(raw) ? expandMatrix(parsed, raw, scope) : ok(plainInstances(raw));
  if (!instances.ok) return instances;
  const context: BuildContext = { parsed, scope, dir, registry: options.registry, validatorDir, failures: [], steps: new Map(),
    boundary: workspaceBoundary(parsed.file.path, options.cacheDir ?? cacheDirFor(dir, undefined, scope.env)) };
  const stages = new Map<string, Stage>();
  for (const instance of instances.value) {
    const stage = await buildStage(context, instance, raw.stages[instance.name]!);
    if (stage) stages.set(instance.id, stage);
  }
  if (context.failures.length > 0) return fail(distinctFailures(context.failures));
  const edgeFailures = checkEdges(parsed, stages, raw.stages);
  if (edgeFailures.length > 0) return fail(distinctFailures(edgeFailures));

  const cycle = findCycle(stages.keys(), (id) => stages.get(id)!.upstream);
  if (cycle) return fail([{ reason: 'cycle', at: stages.get(cycle[0]!)!.at(), stages: cycle }]);
  const order = topologicalOrder([...stages.keys()], (id) => stages.get(id)!.upstream);
  const name = raw.name ?? parsed.file.path.split('/').pop()!.replace(/\.ya?ml$/, '');
  return ok({ file: parsed.file, dir, name, seed: raw.seed ?? 0, ...(raw.remote ? { remote: raw.remote } : {}), stages, order });
}

/**
 * A misspelt key explains a "missing required key" too, so it is the error worth showing; a bad key name
 * is worth showing as such, not as the pattern it breaks.
 */
function mostSpecificError(errors: ErrorObject[]): ErrorObject {
  const rank = (e: ErrorObject) => ['additionalProperties', 'propertyNames', 'type', 'enum'].indexOf(e.keyword) >>> 0;
  const aboutValues = errors.filter((e) => (e as { propertyName?: string }).propertyName === undefined);
  return [...(aboutValues.length > 0 ? aboutValues : errors)].sort((a, b) => rank(a) - rank(b) || b.instancePath.length - a.instancePath.length)[0]!;
}

/** What a schema error at `path` is about, in the user's words. */
function schemaSubject(path: readonly string[], keyword: string): string {
  if (path[path.length - 1] === 'matrix' && keyword === 'propertyNames') return 'the matrix (an axis name is a letter or _, then letters, digits or _)';
  if (path[1] === 'stages' && path[2]) return `stage "${path[2]}"`;
  if (path[1] === 'stages' && keyword === 'propertyNames') return 'stages (a stage name is a letter, then letters, digits, _ or -)';
  return 'the pipeline';
}

function checkShape(parsed: ParsedYaml, validatorDir: string | undefined): Failure[] {
  const validate = validatorFor(pipelineSchema, validatorDir);
  const errors = validate(structuredClone(parsed.value)) ? [] : validate.errors ?? [];
  const failures: Failure[] = (errors.length > 0 ? [mostSpecificError(errors)] : []).map((error) => {
    const problem = describeSchemaError(error, schemaSubject(error.instancePath.split('/'), error.keyword));
    return { reason: 'invalid-pipeline', at: locate(parsed, problem.path, problem.part), detail: problem.detail };
  });
  return failures;
}

function applyOverrides(raw: RawPipeline, overrides: readonly string[]): Failure[] {
  const failures: Failure[] = [];
  for (const override of overrides) {
    const match = /^([^=]+)=(.*)$/s.exec(override);
    const keys = match?.[1]!.trim().split('.') ?? [];
    if (match?.[1]!.includes('@')) {
      failures.push({ reason: 'bad-override', override, detail: 'a --set applies to all instances of a stage: name the stage without @…' });
      continue;
    }
    if (!match || keys.length < 2 || keys.some((k) => k === '')) {
      failures.push({ reason: 'bad-override', override, detail: 'expected params.NAME=VALUE or STAGE.PARAM=VALUE' });
      continue;
    }
    const forbidden = keys.find((key) => FORBIDDEN_KEYS.has(key));
    if (forbidden) {
      failures.push({ reason: 'bad-override', override, detail: `"${forbidden}" cannot be a key` });
      continue;
    }
    const parsedValue = parseYaml({ path: '--set', text: match[2]! });
    if (!parsedValue.ok) {
      const first = parsedValue.error[0]!;
      failures.push({ reason: 'bad-override', override, detail: `the value is not valid YAML: ${'detail' in first ? first.detail : failureMessage(first)}` });
      continue;
    }
    const value = parsedValue.value.value;
    const [head, ...rest] = keys as [string, ...string[]];
    if (head === 'params') {
      raw.params ??= {};
      if (rest.length === 1 && !Object.hasOwn(raw.params, rest[0]!)) {
        failures.push({ reason: 'bad-override', override, detail: `the pipeline has no param "${rest[0]}"${didYouMean(rest[0]!, Object.keys(raw.params))}` });
        continue;
      }
      setPath(raw.params, rest, value);
    } else if (head === 'matrix' && !Object.hasOwn(raw.stages, 'matrix')) {
      const failure = overrideMatrix(raw, rest, value);
      if (failure) failures.push({ reason: 'bad-override', override, detail: failure });
    } else if (Object.hasOwn(raw.stages, head)) {
      raw.stages[head]!.with ??= {};
      setPath(raw.stages[head]!.with, rest, value);
    } else {
      const suggestion = closestMatch(head, ['params', ...Object.keys(raw.stages)]);
      failures.push({ reason: 'bad-override', override, detail: `no stage "${head}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}` });
    }
  }
  return failures;
}

/** `--set matrix.AXIS=[a, b]` (or one value) replaces the values of an axis of the pipeline's matrix. */
function overrideMatrix(raw: RawPipeline, keys: readonly string[], value: unknown): string | undefined {
  const axes = Object.keys(raw.matrix ?? {});
  if (keys.length !== 1 || !axes.includes(keys[0]!)) {
    return `the pipeline's matrix has no axis "${keys.join('.')}"${didYouMean(keys.join('.'), axes) || (axes.length > 0 ? ` (its axes: ${axes.join(', ')})` : '')}`;
  }
  const values = Array.isArray(value) ? value : [value];
  if (values.length === 0 || values.some((v) => v === null || typeof v === 'object')) return 'expected a value or a list of strings, numbers or booleans';
  raw.matrix![keys[0]!] = values;
  return undefined;
}

function setPath(target: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = (next !== null && typeof next === 'object' ? next : (node[key] = {})) as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

async function buildStage(context: BuildContext, instance: StageInstance, raw: RawStage): Promise<Stage | undefined> {
  const { parsed, failures } = context;
  const stagePath = ['stages', instance.name];
  const resolved = await resolveStepOnce(context, raw.uses);
  if (!resolved.ok) {
    const usesAt = locate(parsed, [...stagePath, 'uses']);
    failures.push(resolved.kind === 'unknown'
      ? { reason: 'unknown-step', at: usesAt, uses: raw.uses, detail: resolved.detail }
      : { reason: 'invalid-step', at: usesAt, uses: raw.uses, detail: resolved.detail });
    return undefined;
  }
  const { step, identity } = resolved.value;
  const problems: InterpolationProblem[] = [];
  const interpolated = interpolateParams(raw.with ?? {}, { ...context.scope, matrix: instance.matrix }, problems);
  const params = interpolated.value as Record<string, unknown>;
  const withPath = [...stagePath, 'with'];
  for (const problem of problems) {
    failures.push({ reason: 'bad-interpolation', at: locate(parsed, [...withPath, ...problem.path]), detail: problem.detail });
  }
  if (problems.length > 0) return undefined;
  const paramError = validateParams(step, params, context.validatorDir);
  if (paramError) {
    failures.push({ reason: 'invalid-param', at: locate(parsed, [...withPath, ...paramError.path], paramError.part), stage: instance.id, detail: paramError.detail });
    return undefined;
  }
  const conflicts = paramInputConflicts(step, raw.with ?? {}, instance.inputs);
  for (const conflict of conflicts) failures.push({ reason: 'invalid-param', at: locate(parsed, [...withPath, conflict.param], 'key'), stage: instance.id, detail: conflict.detail });
  if (conflicts.length > 0) return undefined;
  const unsafePaths = unsafeWorkspacePaths(step, params, context.boundary);
  for (const unsafe of unsafePaths) failures.push({ reason: 'unsafe-path', at: locate(parsed, [...withPath, ...unsafe.param]), stage: instance.id, detail: unsafe.problem });
  if (unsafePaths.length > 0) return undefined;
  const upstream = [...new Set([...Object.values(instance.inputs).map((input) => input.stage), ...instance.needs])].sort();
  const secrets = secretsOf(interpolated.envUses, context.scope.env as Readonly<Record<string, string | undefined>>);
  const key = envKey(interpolated.envUses, secrets);
  return {
    id: instance.id,
    name: instance.name,
    matrix: instance.matrix,
    uses: raw.uses,
    step,
    identity,
    params,
    keyParams: keyedParams(params, interpolated.envUses),
    ...(key ? { envKey: key } : {}),
    secrets,
    inputs: instance.inputs,
    needs: instance.needs,
    upstream,
    outputs: outputNames(step, params),
    deps: step.deps ? step.deps(params) : [],
    at: () => locate(parsed, stagePath, 'key'),
  };
}

/**
 * A param an input sets is not also written in `with:` (one of the two would be ignored), and the param
 * that scales it means nothing unless the input is wired.
 */
function paramInputConflicts(step: AnyStep, written: Record<string, unknown>, inputs: Record<string, StageInput>): { param: string; detail: string }[] {
  return Object.entries(step.paramInputs ?? {}).flatMap(([param, source]) => {
    const wired = Object.hasOwn(inputs, source.input);
    if (wired && Object.hasOwn(written, param)) {
      return [{ param, detail: `"${param}" is set by input "${source.input}"${source.scale ? ` × ${source.scale}` : ''}: remove it from with:, or leave the input out` }];
    }
    if (!wired && source.scale && Object.hasOwn(written, source.scale)) {
      return [{ param: source.scale, detail: `"${source.scale}" scales input "${source.input}", which the stage does not wire (inputs: { ${source.input}: STAGE.OUTPUT })` }];
    }
    return [];
  });
}

function resolveStepOnce(context: BuildContext, uses: string): Promise<StepResolution> {
  let resolution = context.steps.get(uses);
  if (!resolution) context.steps.set(uses, (resolution = resolveStep(uses, context.dir, context.registry)));
  return resolution;
}

/** The instances of a matrix stage repeat one mistake at one place in the file: it is reported once. */
function distinctFailures(failures: readonly Failure[]): Failure[] {
  const seen = new Set<string>();
  return failures.filter((failure) => {
    const at = 'at' in failure ? failure.at?.offset : undefined;
    const key = `${failure.reason}@${at}:${'detail' in failure ? failure.detail : failureMessage(failure)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function validateParams(step: AnyStep, params: Record<string, unknown>, validatorDir: string | undefined): { path: YamlPath; part: 'key' | 'value'; detail: string } | undefined {
  const validate = validatorFor(step.params, validatorDir);
  if (validate(params)) return undefined;
  return describeSchemaError(mostSpecificError(validate.errors!), `the parameters of step "${step.name}"`);
}

/** The input names a stage may wire (required and optional); undefined when the step takes any. */
function readableInputs(step: AnyStep): readonly string[] | undefined {
  if (!step.inputs && !step.optionalInputs) return undefined;
  return [...(step.inputs ?? []), ...(step.optionalInputs ?? [])];
}

/** Every `inputs:` and `needs:` reference names an existing stage, output and declared input. */
function checkEdges(parsed: ParsedYaml, stages: ReadonlyMap<string, Stage>, declared: Readonly<Record<string, RawStage>>): Failure[] {
  const failures: Failure[] = [];
  const names = Object.keys(declared);
  for (const stage of stages.values()) {
    const stagePath = ['stages', stage.name];
    for (const [name, input] of Object.entries(stage.inputs)) {
      const at = locate(parsed, [...stagePath, 'inputs', name]);
      const declaredInputs = readableInputs(stage.step);
      if (declaredInputs && !declaredInputs.includes(name)) {
        failures.push({ reason: 'unknown-output', at: locate(parsed, [...stagePath, 'inputs', name], 'key'), detail: `step "${stage.step.name}" has no input "${name}"${didYouMean(name, declaredInputs)}` });
        continue;
      }
      const upstream = stages.get(input.stage);
      if (!upstream) {
        failures.push({ reason: 'unknown-stage', at, stage: input.stage, suggestion: closestMatch(input.stage, names) });
      } else if (!upstream.outputs.includes(input.output)) {
        failures.push({ reason: 'unknown-output', at, detail: `stage "${upstream.name}" has no output "${input.output}"${didYouMean(input.output, upstream.outputs) || ` (its outputs: ${upstream.outputs.join(', ') || 'none'})`}` });
      }
    }
    for (const missing of (stage.step.inputs ?? []).filter((name) => !Object.hasOwn(stage.inputs, name))) {
      failures.push({ reason: 'unknown-output', at: stage.at(), detail: `stage "${stage.name}" is missing input "${missing}" (step "${stage.step.name}" reads it)` });
    }
  }
  for (const [name, raw] of Object.entries(declared)) {
    (raw.needs ?? []).forEach((need, index) => {
      const needed = /^[^@]*/.exec(need)![0];
      if (!Object.hasOwn(declared, needed)) {
        failures.push({ reason: 'unknown-stage', at: locate(parsed, ['stages', name, 'needs', index]), stage: needed, suggestion: closestMatch(needed, names) });
      }
    });
  }
  return failures;
}
