import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { ErrorObject } from 'ajv';
import type { StepIdentity } from './cache-key.js';
import type { Failure, Result, SourceFile, SourceRange } from './failure.js';
import { fail, ok } from './failure.js';
import { interpolate, type InterpolationProblem } from './interpolate.js';
import { findCycle, topologicalOrder } from './graph.js';
import { describeSchemaError } from './schema-errors.js';
import { validatorFor } from './schema-validator.js';
import { outputNames, type StepDefinition, type StepRegistry } from './step.js';
import { resolveStep } from './step-resolver.js';
import { closestMatch, didYouMean } from './util/suggest.js';
import { locate, mappingKeys, parseYaml, readSourceFile, rememberParsed, yaml, type ParsedYaml, type YamlPath } from './yaml-source.js';

export interface StageInput {
  stage: string;
  output: string;
}

export interface Stage {
  id: string;
  uses: string;
  step: StepDefinition<any>;
  identity: StepIdentity;
  /** Parameters after interpolation, overrides and the step schema's defaults. */
  params: Record<string, unknown>;
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
  inputs?: Record<string, string>;
  needs?: string[];
}

interface RawPipeline {
  name?: string;
  seed?: number;
  params?: Record<string, unknown>;
  stages: Record<string, RawStage>;
}

const pipelineSchema = createRequire(import.meta.url)('../schema/pipeline.schema.json') as object;

export async function loadPipeline(path: string, options: LoadOptions): Promise<Result<Pipeline>> {
  const file = await readSourceFile(resolve(path));
  if (!file.ok) return file;
  const parsed = parseYaml(file.value, options.cacheDir);
  if (!parsed.ok) return parsed;
  const analyzed = await analyze(parsed.value, options);
  if (analyzed.ok && options.cacheDir) await rememberParsed(parsed.value, options.cacheDir);
  return analyzed;
}

async function analyze(parsed: ParsedYaml, options: LoadOptions): Promise<Result<Pipeline>> {
  const validatorDir = options.cacheDir && join(options.cacheDir, 'validators');
  const shapeErrors = checkShape(parsed, validatorDir);
  if (shapeErrors.length > 0) return fail(shapeErrors);
  const raw = structuredClone(parsed.value) as RawPipeline;
  const overrideErrors = applyOverrides(raw, options.overrides ?? []);
  if (overrideErrors.length > 0) return fail(overrideErrors);

  const dir = dirname(parsed.file.path);
  const failures: Failure[] = [];
  const stages = new Map<string, Stage>();
  const scope = { params: raw.params ?? {}, env: options.env ?? process.env };
  for (const [id, rawStage] of Object.entries(raw.stages)) {
    const stage = await buildStage(parsed, id, rawStage, scope, dir, options.registry, validatorDir, failures);
    if (stage) stages.set(id, stage);
  }
  if (failures.length > 0) return fail(failures);
  failures.push(...checkEdges(parsed, stages));
  if (failures.length > 0) return fail(failures);

  const cycle = findCycle(stages.keys(), (id) => stages.get(id)!.upstream);
  if (cycle) return fail([{ reason: 'cycle', at: stages.get(cycle[0]!)!.at(), stages: cycle }]);
  const order = topologicalOrder([...stages.keys()], (id) => stages.get(id)!.upstream);
  const name = raw.name ?? parsed.file.path.split('/').pop()!.replace(/\.ya?ml$/, '');
  return ok({ file: parsed.file, dir, name, seed: raw.seed ?? 0, stages, order });
}

/** A misspelt key explains a "missing required key" too, so it is the error worth showing. */
function mostSpecificError(errors: ErrorObject[]): ErrorObject {
  const rank = (e: ErrorObject) => ['additionalProperties', 'type', 'enum'].indexOf(e.keyword) >>> 0;
  return [...errors].sort((a, b) => rank(a) - rank(b) || b.instancePath.length - a.instancePath.length)[0]!;
}

function checkShape(parsed: ParsedYaml, validatorDir: string | undefined): Failure[] {
  const validate = validatorFor(pipelineSchema, validatorDir);
  const errors = validate(structuredClone(parsed.value)) ? [] : validate.errors ?? [];
  const failures: Failure[] = (errors.length > 0 ? [mostSpecificError(errors)] : []).map((error) => {
    const path = error.instancePath.split('/');
    const what = path[1] === 'stages' && path[2] ? `stage "${path[2]}"` : 'the pipeline';
    const problem = describeSchemaError(error, what);
    return { reason: 'invalid-pipeline', at: locate(parsed, problem.path, problem.part), detail: problem.detail };
  });
  // Duplicate keys are a property of the text; a remembered text was already checked.
  if (failures.length > 0 || parsed.remembered) return failures;
  const seen = new Set<string>();
  for (const { key, at } of mappingKeys(parsed, ['stages'])) {
    if (seen.has(key)) failures.push({ reason: 'duplicate-stage', at, stage: key });
    seen.add(key);
  }
  return failures;
}

function applyOverrides(raw: RawPipeline, overrides: readonly string[]): Failure[] {
  const failures: Failure[] = [];
  for (const override of overrides) {
    const match = /^([^=]+)=(.*)$/s.exec(override);
    const keys = match?.[1]!.trim().split('.') ?? [];
    if (!match || keys.length < 2 || keys.some((k) => k === '')) {
      failures.push({ reason: 'bad-override', override, detail: 'expected params.NAME=VALUE or STAGE.PARAM=VALUE' });
      continue;
    }
    const value: unknown = yaml().parse(match[2]!);
    const [head, ...rest] = keys as [string, ...string[]];
    if (head === 'params') {
      raw.params ??= {};
      if (rest.length === 1 && !(rest[0]! in raw.params)) {
        failures.push({ reason: 'bad-override', override, detail: `the pipeline has no param "${rest[0]}"${didYouMean(rest[0]!, Object.keys(raw.params))}` });
        continue;
      }
      setPath(raw.params, rest, value);
    } else if (raw.stages[head]) {
      raw.stages[head].with ??= {};
      setPath(raw.stages[head].with, rest, value);
    } else {
      const suggestion = closestMatch(head, ['params', ...Object.keys(raw.stages)]);
      failures.push({ reason: 'bad-override', override, detail: `no stage "${head}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}` });
    }
  }
  return failures;
}

function setPath(target: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = (next !== null && typeof next === 'object' ? next : (node[key] = {})) as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

async function buildStage(
  parsed: ParsedYaml,
  id: string,
  raw: RawStage,
  scope: { params: Record<string, unknown>; env: Readonly<Record<string, string | undefined>> },
  dir: string,
  registry: StepRegistry,
  validatorDir: string | undefined,
  failures: Failure[],
): Promise<Stage | undefined> {
  const stagePath = ['stages', id];
  const resolved = await resolveStep(raw.uses, dir, registry);
  if (!resolved.ok) {
    const usesAt = locate(parsed, [...stagePath, 'uses']);
    failures.push(resolved.kind === 'unknown'
      ? { reason: 'unknown-step', at: usesAt, uses: raw.uses, detail: resolved.detail }
      : { reason: 'invalid-step', at: usesAt, uses: raw.uses, detail: resolved.detail });
    return undefined;
  }
  const { step, identity } = resolved.value;
  const problems: InterpolationProblem[] = [];
  const params = interpolate(raw.with ?? {}, scope, problems) as Record<string, unknown>;
  const withPath = [...stagePath, 'with'];
  for (const problem of problems) {
    failures.push({ reason: 'bad-interpolation', at: locate(parsed, [...withPath, ...problem.path]), detail: problem.detail });
  }
  if (problems.length > 0) return undefined;
  const paramError = validateParams(step, params, validatorDir);
  if (paramError) {
    failures.push({ reason: 'invalid-param', at: locate(parsed, [...withPath, ...paramError.path], paramError.part), stage: id, detail: paramError.detail });
    return undefined;
  }
  const inputs: Record<string, StageInput> = {};
  for (const [name, reference] of Object.entries(raw.inputs ?? {})) {
    const dot = reference.indexOf('.');
    inputs[name] = { stage: reference.slice(0, dot), output: reference.slice(dot + 1) };
  }
  const upstream = [...new Set([...Object.values(inputs).map((input) => input.stage), ...(raw.needs ?? [])])].sort();
  return {
    id,
    uses: raw.uses,
    step,
    identity,
    params,
    inputs,
    needs: raw.needs ?? [],
    upstream,
    outputs: outputNames(step, params),
    deps: step.deps ? step.deps(params) : [],
    at: () => locate(parsed, stagePath, 'key'),
  };
}

function validateParams(step: StepDefinition<any>, params: Record<string, unknown>, validatorDir: string | undefined): { path: YamlPath; part: 'key' | 'value'; detail: string } | undefined {
  const validate = validatorFor(step.params, validatorDir);
  if (validate(params)) return undefined;
  return describeSchemaError(mostSpecificError(validate.errors!), `the parameters of step "${step.name}"`);
}

/** Every `inputs:` and `needs:` reference names an existing stage, output and declared input. */
function checkEdges(parsed: ParsedYaml, stages: ReadonlyMap<string, Stage>): Failure[] {
  const failures: Failure[] = [];
  for (const stage of stages.values()) {
    const stagePath = ['stages', stage.id];
    for (const [name, input] of Object.entries(stage.inputs)) {
      const at = locate(parsed, [...stagePath, 'inputs', name]);
      const declared = stage.step.inputs;
      if (declared && !declared.includes(name)) {
        failures.push({ reason: 'unknown-output', at: locate(parsed, [...stagePath, 'inputs', name], 'key'), detail: `step "${stage.step.name}" has no input "${name}"${didYouMean(name, declared)}` });
        continue;
      }
      const upstream = stages.get(input.stage);
      if (!upstream) {
        failures.push({ reason: 'unknown-stage', at, stage: input.stage, suggestion: closestMatch(input.stage, stages.keys()) });
      } else if (!upstream.outputs.includes(input.output)) {
        failures.push({ reason: 'unknown-output', at, detail: `stage "${input.stage}" has no output "${input.output}"${didYouMean(input.output, upstream.outputs) || ` (its outputs: ${upstream.outputs.join(', ') || 'none'})`}` });
      }
    }
    for (const missing of (stage.step.inputs ?? []).filter((name) => !(name in stage.inputs))) {
      failures.push({ reason: 'unknown-output', at: stage.at(), detail: `stage "${stage.id}" is missing input "${missing}" (step "${stage.step.name}" reads it)` });
    }
    stage.needs.forEach((need, index) => {
      if (!stages.has(need)) {
        failures.push({ reason: 'unknown-stage', at: locate(parsed, [...stagePath, 'needs', index]), stage: need, suggestion: closestMatch(need, stages.keys()) });
      }
    });
  }
  return failures;
}
