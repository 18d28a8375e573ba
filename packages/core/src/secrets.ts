import type { EnvKey, StageKeyDocument } from './cache-key.js';
import { StepUserError } from './failure.js';
import { interpolate, type EnvUse, type InterpolationProblem } from './interpolate.js';
import { sha256 } from './util/digest.js';

/** The values of the environment variables a stage's params name, by name. */
export type Secrets = Readonly<Record<string, string>>;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Values shorter than this are not masked in logs and failure messages: masking `1` or `yes` would garble
 * every line that has those characters and hide nothing worth hiding (a real token is longer).
 */
const SHORTEST_MASKED = 4;

export function secretsOf(uses: readonly EnvUse[], env: Env): Secrets {
  return Object.fromEntries(uses.flatMap((use) => use.names).map((name) => [name, env[name] ?? '']));
}

/** What the key holds for a stage's `${env.…}` uses; undefined for a stage without any. */
export function envKey(uses: readonly EnvUse[], secrets: Secrets): EnvKey | undefined {
  if (uses.length === 0) return undefined;
  const names = Object.keys(secrets).sort();
  const paths = uses.map((use) => use.path).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  return { sha256: Object.fromEntries(names.map((name) => [name, sha256(secrets[name]!)])), paths };
}

/** The params with each `${env.…}` string back to its template: what keys, lock files and run logs hold. */
export function keyedParams<T>(params: T, uses: readonly EnvUse[]): T {
  if (uses.length === 0) return params;
  const keyed = structuredClone(params);
  for (const use of uses) setAt(keyed, use.path, use.template);
  return keyed;
}

/**
 * The params a step runs with: the key document's, with `${env.NAME}` filled in from `env` (this process's
 * environment on a queue worker, which never receives the values). Each value must hash to what the key
 * holds, or the outputs would not be the ones the key names.
 */
export function runtimeParams(document: StageKeyDocument, env: Env): { params: Record<string, unknown>; secrets: Secrets } {
  const params = document.params as Record<string, unknown>;
  if (!document.env) return { params, secrets: {} };
  const secrets: Record<string, string> = {};
  for (const [name, hash] of Object.entries(document.env.sha256)) {
    const value = env[name];
    if (value === undefined) throw new StepUserError(`environment variable ${name} is not set here (the stage's params name \${env.${name}})`);
    if (sha256(value) !== hash) throw new StepUserError(`environment variable ${name} here differs from the value the stage was keyed with (the stage's params name \${env.${name}})`);
    secrets[name] = value;
  }
  const filled = structuredClone(params);
  const problems: InterpolationProblem[] = [];
  for (const path of document.env.paths) setAt(filled, path, interpolate(getAt(filled, path), { env: secrets }, problems));
  if (problems.length > 0) throw new Error(`bug: the key's \${env.…} templates do not resolve: ${problems[0]!.detail}`);
  return { params: filled, secrets };
}

/** The values in `env` of the variables a stage's key names: what a queue worker masks in what it returns. */
export function keyedSecrets(document: StageKeyDocument, env: Env): Secrets {
  return Object.fromEntries(Object.keys(document.env?.sha256 ?? {}).flatMap((name) => (env[name] === undefined ? [] : [[name, env[name]]])));
}

/** Each secret's value in `text` replaced by its reference, as CI systems mask secrets in logs. */
export function redactSecrets(text: string, secrets: Secrets): string {
  const masked = Object.entries(secrets).filter(([, value]) => value.length >= SHORTEST_MASKED).sort((a, b) => b[1].length - a[1].length);
  return masked.reduce((result, [name, value]) => result.split(value).join(`\${env.${name}}`), text);
}

function getAt(root: unknown, path: readonly (string | number)[]): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], root);
}

function setAt(root: unknown, path: readonly (string | number)[], value: unknown): void {
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>;
  parent[path[path.length - 1]!] = value;
}
