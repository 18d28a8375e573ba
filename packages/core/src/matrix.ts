import type { Failure, Result } from './failure.js';
import { fail, ok } from './failure.js';
import { findCycle } from './graph.js';
import { envNames, interpolate, type InterpolationProblem, type Scope } from './interpolate.js';
import { didYouMean } from './util/suggest.js';
import { locate, type ParsedYaml, type YamlPath } from './yaml-source.js';

export type MatrixValue = string | number | boolean;

/** Where a stage input comes from: an output of an upstream stage. */
export interface StageInput {
  stage: string;
  output: string;
}

/** The parts of a pipeline file (after `--set`) that matrix expansion reads. */
export interface MatrixSource {
  matrix?: Record<string, unknown>;
  stages: Record<string, { with?: Record<string, unknown>; inputs?: Record<string, string>; needs?: string[]; matrix?: Record<string, unknown> }>;
}

/** One stage of the file for one combination of the matrix values it uses. */
export interface StageInstance {
  /** `name` alone, or `name@axis=label,axis=label` with the axes in declaration order. */
  id: string;
  /** The stage's name in the file. */
  name: string;
  /** This instance's value of each axis it is expanded over (empty for a stage no matrix expands). */
  matrix: Record<string, MatrixValue>;
  inputs: Record<string, StageInput>;
  needs: string[];
}

interface Axis {
  name: string;
  values: MatrixValue[];
  /** How each value appears in instance ids: its text if shell-safe and distinct, else its position. */
  labels: string[];
  /** The stage whose own `matrix:` declares the axis; undefined for the pipeline's `matrix:`. */
  owner: string | undefined;
  /** Ids list axes in this order: the pipeline's first, then each stage's, in file order. */
  rank: number;
}

/** A reference to an upstream stage (`stage.output`, `stage@axis=label.output`, or a `needs:` entry). */
interface Link {
  upstream: string;
  /** Axis values the reference picks itself (`@axis=label`), as positions in the axis. */
  fixed: Choice;
  output: string;
}

/** A combination of axis values: a position in each axis, by axis name. */
type Choice = Record<string, number>;

const STAGE_NAME = /^[A-Za-z][A-Za-z0-9_-]*/;
const UNSAFE_LABEL_TEXT = /[^A-Za-z0-9_.+-]+/g;

export function usesMatrix(source: MatrixSource): boolean {
  return source.matrix !== undefined || Object.values(source.stages).some((stage) => stage.matrix !== undefined);
}

/** One instance per stage, for a pipeline without `matrix:` (the fast path). */
export function plainInstances(source: MatrixSource): StageInstance[] {
  return Object.entries(source.stages).map(([name, stage]) => {
    const inputs: Record<string, StageInput> = {};
    for (const [input, reference] of Object.entries(stage.inputs ?? {})) {
      const dot = reference.indexOf('.');
      inputs[input] = { stage: reference.slice(0, dot), output: reference.slice(dot + 1) };
    }
    return { id: name, name, matrix: {}, inputs, needs: stage.needs ?? [] };
  });
}

/**
 * Expands every stage over the matrix axes it uses: those its `with:` names as `${matrix.NAME}` and those
 * of each stage it takes inputs from, so shared upstream work stays one stage and downstream stages fan
 * out with their inputs. An input resolves to the upstream instance with the same values.
 */
export function expandMatrix(parsed: ParsedYaml, source: MatrixSource, scope: Scope): Result<StageInstance[]> {
  const cycle = declaredCycle(parsed, source);
  if (cycle) return fail([cycle]);
  const failures: Failure[] = [];
  const pipelineAxes = readAxes(parsed, source.matrix, ['matrix'], undefined, { scope, failures, rank: 0 });
  const stageAxes = new Map<string, Map<string, Axis>>();
  let rank = pipelineAxes.size;
  for (const [name, stage] of Object.entries(source.stages)) {
    const axes = readAxes(parsed, stage.matrix, ['stages', name, 'matrix'], name, { scope, failures, rank });
    rank += axes.size;
    for (const axis of axes.values()) {
      if (pipelineAxes.has(axis.name)) {
        failures.push({ reason: 'invalid-pipeline', at: locate(parsed, ['stages', name, 'matrix', axis.name], 'key'), detail: `matrix axis "${axis.name}" is already an axis of the pipeline's matrix` });
      }
    }
    stageAxes.set(name, axes);
  }
  if (failures.length > 0) return fail(failures);
  const expansion = new Expansion(parsed, source, pipelineAxes, stageAxes, failures);
  const instances = Object.keys(source.stages).flatMap((name) => expansion.instancesOf(name));
  return failures.length > 0 ? fail(failures) : ok(instances);
}

/** A cycle among the file's stages, found before expansion (which follows inputs upstream). */
function declaredCycle(parsed: ParsedYaml, source: MatrixSource): Failure | undefined {
  const upstreamOf = (name: string) => {
    const stage = source.stages[name];
    const references = [...Object.values(stage?.inputs ?? {}), ...(stage?.needs ?? [])];
    return references.map((reference) => STAGE_NAME.exec(reference)?.[0] ?? '').filter((upstream) => upstream in source.stages);
  };
  const cycle = findCycle(Object.keys(source.stages), upstreamOf);
  return cycle && { reason: 'cycle', at: locate(parsed, ['stages', cycle[0]!], 'key'), stages: cycle };
}

function readAxes(
  parsed: ParsedYaml,
  matrix: Record<string, unknown> | undefined,
  path: YamlPath,
  owner: string | undefined,
  context: { scope: Scope; failures: Failure[]; rank: number },
): Map<string, Axis> {
  const axes = new Map<string, Axis>();
  for (const [name, list] of Object.entries(matrix ?? {})) {
    const values = axisValues(parsed, name, list, [...path, name], context.scope, context.failures);
    if (values) axes.set(name, { name, values, labels: labelsOf(values), owner, rank: context.rank + axes.size });
  }
  return axes;
}

/** An axis's values after `${params.x}` interpolation: a non-empty list of distinct scalars. */
function axisValues(parsed: ParsedYaml, name: string, list: unknown, path: YamlPath, scope: Scope, failures: Failure[]): MatrixValue[] | undefined {
  const envFailures = envReferences(list, path).map(({ at, names }) => ({
    reason: 'invalid-pipeline' as const,
    at: locate(parsed, at),
    detail: `matrix axis "${name}": \${env.${names[0]}} cannot be a matrix value (matrix values become stage ids, which are stored and printed); pass it to the stage's with: instead`,
  }));
  if (envFailures.length > 0) {
    failures.push(...envFailures);
    return undefined;
  }
  const problems: InterpolationProblem[] = [];
  const values = interpolate(Array.isArray(list) ? list : [list], scope, problems) as unknown[];
  const at = (index: number) => locate(parsed, [...path, index]);
  for (const problem of problems) failures.push({ reason: 'bad-interpolation', at: locate(parsed, [...path, ...problem.path]), detail: problem.detail });
  if (problems.length > 0) return undefined;
  const before = failures.length;
  if (values.length === 0) failures.push({ reason: 'invalid-pipeline', at: locate(parsed, path), detail: `matrix axis "${name}" has no values` });
  values.forEach((value, index) => {
    if (!isMatrixValue(value)) {
      failures.push({ reason: 'invalid-pipeline', at: at(index), detail: `matrix axis "${name}": ${JSON.stringify(value)} is not a string, number or boolean` });
    } else if (values.indexOf(value) < index) {
      failures.push({ reason: 'invalid-pipeline', at: at(index), detail: `matrix axis "${name}" lists ${JSON.stringify(value)} twice` });
    }
  });
  return failures.length === before ? (values as MatrixValue[]) : undefined;
}

/** Each string under `value` (before interpolation) that names `${env.…}`, and where it is. */
function envReferences(value: unknown, path: YamlPath): { at: YamlPath; names: string[] }[] {
  if (typeof value === 'string') {
    const names = envNames(value);
    return names.length > 0 ? [{ at: path, names }] : [];
  }
  if (Array.isArray(value)) return value.flatMap((item, index) => envReferences(item, [...path, index]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => envReferences(item, [...path, key]));
  return [];
}

function isMatrixValue(value: unknown): value is MatrixValue {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

/** `0.001`, `mobilenet_v2`, `file_models_a.json`; positions (`0`, `1`, …) if that makes two alike or one empty. */
function labelsOf(values: readonly MatrixValue[]): string[] {
  const labels = values.map((value) => String(value).replace(UNSAFE_LABEL_TEXT, '_'));
  const usable = labels.every((label) => label !== '') && new Set(labels).size === labels.length;
  return usable ? labels : values.map((_value, index) => String(index));
}

/** Works out, stage by stage and memoized, which axes each stage is expanded over, then its instances. */
class Expansion {
  private readonly axesByStage = new Map<string, Axis[]>();
  private readonly linksByStage = new Map<string, { inputs: Map<string, Link>; needs: Link[] }>();

  constructor(
    private readonly parsed: ParsedYaml,
    private readonly source: MatrixSource,
    private readonly pipelineAxes: ReadonlyMap<string, Axis>,
    private readonly stageAxes: ReadonlyMap<string, ReadonlyMap<string, Axis>>,
    private readonly failures: Failure[],
  ) {}

  instancesOf(name: string): StageInstance[] {
    const axes = this.axesOf(name);
    const links = this.linksByStage.get(name)!;
    return choices(axes).map((choice) => ({
      id: instanceId(name, axes, choice),
      name,
      matrix: Object.fromEntries(axes.map((axis) => [axis.name, axis.values[choice[axis.name]!]!])),
      inputs: Object.fromEntries([...links.inputs].map(([input, link]) => [input, { stage: this.upstreamId(link, choice), output: link.output }])),
      needs: links.needs.flatMap((link) => this.upstreamIds(link, choice)),
    }));
  }

  /** The stage's axes, in id order. Acyclic by now (`declaredCycle`), so the recursion ends. */
  private axesOf(name: string): Axis[] {
    const known = this.axesByStage.get(name);
    if (known) return known;
    const stage = this.source.stages[name];
    if (!stage) return [];
    const inputs = new Map(Object.entries(stage.inputs ?? {}).flatMap(([input, reference]) => {
      const link = this.link(name, ['inputs', input], reference);
      return link ? [[input, link] as const] : [];
    }));
    const needs = (stage.needs ?? []).flatMap((reference, index) => this.link(name, ['needs', index], reference) ?? []);
    this.linksByStage.set(name, { inputs, needs });
    const inherited = this.inheritedAxes(name, inputs);
    const referenced = this.referencedAxes(name, inherited);
    const axes = [...new Set([...inherited.values(), ...referenced])].sort((a, b) => a.rank - b.rank);
    this.axesByStage.set(name, axes);
    return axes;
  }

  /** The axes of the stages it takes inputs from, less those an input picks a value of. */
  private inheritedAxes(name: string, inputs: ReadonlyMap<string, Link>): Map<string, Axis> {
    const inherited = new Map<string, Axis>();
    for (const [input, link] of inputs) {
      for (const axis of this.axesOf(link.upstream).filter((upstreamAxis) => !(upstreamAxis.name in link.fixed))) {
        const other = inherited.get(axis.name);
        if (other && other !== axis) {
          const detail = `stage "${name}" takes inputs expanded over two matrix axes named "${axis.name}" (of stages "${other.owner}" and "${axis.owner}"); rename one`;
          this.failures.push({ reason: 'invalid-pipeline', at: locate(this.parsed, ['stages', name, 'inputs', input]), detail });
        }
        inherited.set(axis.name, axis);
      }
    }
    for (const axis of this.stageAxes.get(name)?.values() ?? []) {
      if (!inherited.has(axis.name)) continue;
      const detail = `matrix axis "${axis.name}" is already an axis of upstream stage "${inherited.get(axis.name)!.owner}"`;
      this.failures.push({ reason: 'invalid-pipeline', at: locate(this.parsed, ['stages', name, 'matrix', axis.name], 'key'), detail });
    }
    return inherited;
  }

  /** The axes its own `with:` names as `${matrix.NAME}`; an unknown name is an error at the reference. */
  private referencedAxes(name: string, inherited: ReadonlyMap<string, Axis>): Axis[] {
    const own = this.stageAxes.get(name);
    const axes: Axis[] = [];
    for (const reference of matrixReferences(this.source.stages[name]!.with ?? {}, [])) {
      const axis = own?.get(reference.axis) ?? inherited.get(reference.axis) ?? this.pipelineAxes.get(reference.axis);
      if (axis) {
        axes.push(axis);
        continue;
      }
      const usable = [...(own?.keys() ?? []), ...inherited.keys(), ...this.pipelineAxes.keys()];
      const detail = `cannot interpolate "\${${reference.expression}}": ${this.whyUnknown(reference.axis, usable)}`;
      this.failures.push({ reason: 'bad-interpolation', at: locate(this.parsed, ['stages', name, 'with', ...reference.path]), detail });
    }
    return axes;
  }

  private whyUnknown(axisName: string, usable: readonly string[]): string {
    const owner = [...this.stageAxes].find(([, axes]) => axes.has(axisName))?.[0];
    if (owner) return `matrix axis "${axisName}" belongs to stage "${owner}": only it and the stages taking inputs from it can use it`;
    return `no matrix axis "${axisName}"${didYouMean(axisName, usable) || (usable.length > 0 ? ` (axes: ${usable.join(', ')})` : '')}`;
  }

  /** Parses `stage.output`, `stage@axis=label,….output` (inputs) or `stage[@axis=label,…]` (needs). */
  private link(name: string, path: YamlPath, reference: string): Link | undefined {
    const upstream = STAGE_NAME.exec(reference)?.[0] ?? '';
    const rest = reference.slice(upstream.length);
    const wantsOutput = path[0] === 'inputs';
    if (!rest.startsWith('@')) return { upstream, fixed: {}, output: rest.slice(1) };
    // An unknown stage is reported with the other edges, after expansion.
    if (!(upstream in this.source.stages)) return { upstream, fixed: {}, output: '' };
    const picked = pickValues(rest.slice(1), upstream, this.axesOf(upstream), wantsOutput);
    if (typeof picked === 'string') {
      this.failures.push({ reason: 'invalid-pipeline', at: locate(this.parsed, ['stages', name, ...path]), detail: `${reference}: ${picked}` });
      return undefined;
    }
    return { upstream, fixed: picked.fixed, output: picked.output };
  }

  /** The upstream instance an input of the instance `choice` reads: the one with the same values. */
  private upstreamId(link: Link, choice: Choice): string {
    return instanceId(link.upstream, this.axesOf(link.upstream), { ...choice, ...link.fixed });
  }

  /** For `needs:`, every upstream instance whose values agree with the instance's on the axes they share. */
  private upstreamIds(link: Link, choice: Choice): string[] {
    const axes = this.axesOf(link.upstream);
    const free = axes.filter((axis) => !(axis.name in link.fixed) && !(axis.name in choice));
    return choices(free).map((rest) => instanceId(link.upstream, axes, { ...choice, ...link.fixed, ...rest }));
  }
}

/**
 * Reads `axis=label,axis=label` then `.output` (when `wantsOutput`) or the end. Labels may hold dots, so
 * each is matched against the axis's labels (the longest that fits). A string says what is wrong.
 */
function pickValues(text: string, upstream: string, axes: readonly Axis[], wantsOutput: boolean): { fixed: Choice; output: string } | string {
  if (axes.length === 0) return `stage "${upstream}" is not expanded by a matrix`;
  const fixed: Choice = {};
  let rest = text;
  for (;;) {
    const equals = rest.indexOf('=');
    const axisName = rest.slice(0, Math.max(0, equals));
    const axis = axes.find((candidate) => candidate.name === axisName);
    if (!axis) return `stage "${upstream}" has no matrix axis "${axisName}"${didYouMean(axisName, axes.map((a) => a.name)) || ` (its axes: ${axes.map((a) => a.name).join(', ')})`}`;
    rest = rest.slice(equals + 1);
    const index = longestLabelAt(rest, axis.labels, wantsOutput ? [',', '.'] : [',', '']);
    if (index === undefined) return `stage "${upstream}" has no such value of matrix axis "${axis.name}" (its values: ${axis.labels.join(', ')})`;
    fixed[axis.name] = index;
    rest = rest.slice(axis.labels[index]!.length);
    if (!rest.startsWith(',')) return { fixed, output: rest.slice(1) };
    rest = rest.slice(1);
  }
}

function longestLabelAt(text: string, labels: readonly string[], followers: readonly string[]): number | undefined {
  let best: number | undefined;
  labels.forEach((label, index) => {
    const fits = followers.some((follower) => (follower === '' ? text === label : text.startsWith(label + follower)));
    if (fits && (best === undefined || label.length > labels[best]!.length)) best = index;
  });
  return best;
}

function instanceId(name: string, axes: readonly Axis[], choice: Choice): string {
  if (axes.length === 0) return name;
  return `${name}@${axes.map((axis) => `${axis.name}=${axis.labels[choice[axis.name]!]}`).join(',')}`;
}

/** Every combination of the axes' values, the last axis varying fastest. */
function choices(axes: readonly Axis[]): Choice[] {
  return axes.reduce<Choice[]>(
    (partial, axis) => partial.flatMap((choice) => axis.values.map((_value, index) => ({ ...choice, [axis.name]: index }))),
    [{}],
  );
}

/** Each `${matrix.NAME…}` in the strings of `value`, with where it is (`$${…}` is a literal). */
function matrixReferences(value: unknown, path: (string | number)[]): { axis: string; expression: string; path: (string | number)[] }[] {
  if (typeof value === 'string') {
    const expressions = [...value.replace(/\$\$\{/g, '').matchAll(/\$\{([^}]*)\}/g)].map((match) => match[1]!.trim());
    return expressions.filter((expression) => expression.startsWith('matrix.')).map((expression) => ({ axis: expression.split('.')[1]!, expression, path }));
  }
  if (Array.isArray(value)) return value.flatMap((item, index) => matrixReferences(item, [...path, index]));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => matrixReferences(item, [...path, key]));
  return [];
}
