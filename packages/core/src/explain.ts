import type { StageKeyDocument } from './cache-key.js';
import type { LockEntry } from './lockfile.js';
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
