import { readFile } from 'node:fs/promises';
import { readManifest } from './artifacts.js';
import type { ArtifactRef, StageKeyDocument } from './cache-key.js';
import type { LocalStore } from './local-store.js';
import type { LockEntry } from './lockfile.js';
import type { Stage } from './pipeline.js';
import { canonicalJson } from './util/canonical-json.js';

/** Why a stage must run, in the user's terms, by comparing its new key document with its lock entry. */
export function explainChange(document: StageKeyDocument, entry: LockEntry | undefined): string[] {
  if (!entry) return ['never ran'];
  const reasons: string[] = [];
  if (canonicalJson(document.step) !== canonicalJson(entry.step)) {
    reasons.push(`step ${document.step.name} changed (${describeStep(entry.step)} -> ${describeStep(document.step)})`);
  }
  for (const path of changedPaths(entry.params, document.params)) {
    reasons.push(`param ${path || '(all)'}: ${show(valueAt(entry.params, path))} -> ${show(valueAt(document.params, path))}`);
  }
  for (const name of changedKeys(entry.inputs, document.inputs)) reasons.push(`input ${name} changed`);
  for (const path of changedKeys(entry.deps, document.deps)) reasons.push(`${path} changed`);
  for (const name of changedKeys(entry.env?.sha256, document.env?.sha256)) reasons.push(`environment variable ${name} changed`);
  if (entry.seed !== document.seed) reasons.push(`seed: ${entry.seed} -> ${document.seed}`);
  return reasons.length > 0 ? reasons : ['outputs are not in the cache'];
}

function describeStep(step: StageKeyDocument['step']): string {
  return step.source === 'file' ? `code ${step.code.slice(0, 8)}` : `${step.package}@${step.packageVersion} v${step.version}`;
}

function changedKeys(before: Record<string, string> = {}, after: Record<string, string> = {}): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((key) => before[key] !== after[key]).sort();
}

/** Dotted paths of the leaves that differ between two parameter objects. */
export function changedPaths(before: unknown, after: unknown, prefix = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => changedPaths(before[key], after[key], prefix ? `${prefix}.${key}` : key));
  }
  return canonicalJson(before) === canonicalJson(after) ? [] : [prefix];
}

function valueAt(value: unknown, path: string): unknown {
  if (!path) return value;
  return path.split('.').reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), value);
}

function show(value: unknown): string {
  return value === undefined ? '(unset)' : JSON.stringify(value);
}

/** Where a param an input sets comes from, and the value when the input's artifact is at hand. */
export interface ParamSource {
  param: string;
  /** The upstream output, `find.lr`. */
  from: string;
  /** The number the input's artifact holds; undefined until that artifact exists here. */
  value?: number;
  scale?: { param: string; value: number };
}

/** The params of a stage that its wired inputs set (see `paramInputs` in step.ts), without their values. */
export function declaredParamSources(stage: Stage): ParamSource[] {
  return Object.entries(stage.step.paramInputs ?? {}).flatMap(([param, spec]) => {
    const input = Object.hasOwn(stage.inputs, spec.input) ? stage.inputs[spec.input]! : undefined;
    if (!input) return [];
    const scale = spec.scale === undefined ? undefined : stage.params[spec.scale];
    return [{ param, from: `${input.stage}.${input.output}`, ...(typeof scale === 'number' ? { scale: { param: spec.scale!, value: scale } } : {}) }];
  });
}

/** `declaredParamSources`, each with its value when `store` holds the upstream artifact: what `status` and `--dry-run` show. */
export async function paramSources(stage: Stage, upstreamOutputs: ReadonlyMap<string, Record<string, ArtifactRef>>, store: LocalStore): Promise<ParamSource[]> {
  const sources = declaredParamSources(stage);
  for (const source of sources) {
    const spec = stage.step.paramInputs![source.param]!;
    const input = stage.inputs[spec.input]!;
    const ref = upstreamOutputs.get(input.stage)?.[input.output];
    const value = ref && (await numberInArtifact(ref, spec.file, spec.field, store));
    if (value !== undefined) source.value = value;
  }
  return sources;
}

/** `lr ← find.lr 0.003 × lr_scale 0.5 = 0.0015` (without the numbers while find has not run). */
export function describeParamSource(source: ParamSource): string {
  const scale = source.scale ? ` × ${source.scale.param} ${source.scale.value}` : '';
  if (source.value === undefined) return `${source.param} ← ${source.from}${scale}`;
  const result = Number((source.value * (source.scale?.value ?? 1)).toPrecision(6));
  return `${source.param} ← ${source.from} ${source.value}${scale} = ${result}`;
}

/** The finite number at `field` of the JSON file `file` in a stored artifact; undefined if it is not one. */
async function numberInArtifact(ref: ArtifactRef, file: string, field: string, store: LocalStore): Promise<number | undefined> {
  const entry = (await readManifest(ref.hash, store))?.find((e) => e.path === file);
  if (!entry || !(await store.verify(entry.hash))) return undefined;
  try {
    const value = (JSON.parse(await readFile(store.objectPath(entry.hash), 'utf8')) as Record<string, unknown>)[field];
    return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
