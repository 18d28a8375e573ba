import { closestMatch } from './util/suggest.js';

/** Values `${namespace.path}` can name: `params`, `env`, and a matrix instance's `matrix`. */
export type Scope = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

export interface InterpolationProblem {
  /** Path inside the interpolated value where the bad reference sits. */
  path: (string | number)[];
  detail: string;
}

const REFERENCE = /\$\{([^}]*)\}/g;
const WHOLE_REFERENCE = /^\$\{([^}]*)\}$/;

/**
 * Replaces `${params.x}`, `${env.X}` and `${matrix.axis}` in every string of `value`. A string that is one
 * reference and nothing else takes the referenced value's type (`"${params.size}"` becomes the number 96);
 * references inside a longer string are spliced in as text. `$${` escapes a literal `${`.
 */
export function interpolate(value: unknown, scope: Scope, problems: InterpolationProblem[], path: (string | number)[] = []): unknown {
  if (typeof value === 'string') return interpolateString(value, scope, problems, path);
  if (Array.isArray(value)) return value.map((item, i) => interpolate(item, scope, problems, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) result[key] = interpolate(item, scope, problems, [...path, key]);
    return result;
  }
  return value;
}

/** A string of the params that names `${env.…}`: where it is, and its text with those references kept. */
export interface EnvUse {
  path: (string | number)[];
  /** The string with `params`/`matrix` references resolved and `${env.NAME}` kept; escapes stay escaped. */
  template: string;
  /** The environment variables it names. */
  names: string[];
}

const TOKEN = /\$\$\{|\$\{([^}]*)\}/g;

/**
 * Like `interpolate`, but also reports each string that names `${env.…}`, with a template that keeps those
 * references: what the cache key, lock file and run log hold instead of the values (secrets, often).
 */
export function interpolateParams(value: unknown, scope: Scope, problems: InterpolationProblem[]): { value: unknown; envUses: EnvUse[] } {
  const envUses: EnvUse[] = [];
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') {
      const before = problems.length;
      const resolved = interpolateString(node, scope, problems, path);
      const names = node.includes('${') ? envNames(node) : [];
      if (names.length > 0 && problems.length === before) envUses.push(envUse(node, resolved, names, scope, problems, path));
      return resolved;
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, [...path, i]));
    if (node !== null && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([key, item]) => [key, walk(item, [...path, key])]));
    return node;
  };
  return { value: walk(value, []), envUses };
}

/** The names of the `${env.NAME}` references in a string (escaped ones excluded). */
export function envNames(text: string): string[] {
  const names = new Set<string>();
  for (const match of text.matchAll(TOKEN)) {
    const [namespace, ...keys] = (match[1] ?? '').trim().split('.');
    if (match[1] !== undefined && namespace === 'env' && keys.length === 1) names.add(keys[0]!);
  }
  return [...names];
}

function envUse(text: string, resolved: unknown, names: string[], scope: Scope, problems: InterpolationProblem[], path: (string | number)[]): EnvUse {
  const template = text.replace(TOKEN, (match, expression: string | undefined) => {
    if (expression === undefined) return match;
    const [namespace, ...keys] = expression.trim().split('.');
    if (namespace === 'env' && keys.length === 1) return `\${env.${keys[0]}}`;
    const value = resolveReference(expression, scope, [], path);
    return (typeof value === 'string' ? value : JSON.stringify(value)).replace(/\$\{/g, () => '$${');
  });
  // The template must give back exactly the value: one template, one value, or two runs could share a key.
  if (JSON.stringify(interpolateString(template, { env: scope['env'] ?? {} }, [], path)) !== JSON.stringify(resolved)) {
    problems.push({ path, detail: 'cannot keep ${env.…} out of the cache key here: write this text with fewer "$" and "{" next to the references' });
  }
  return { path, template, names };
}

function interpolateString(text: string, scope: Scope, problems: InterpolationProblem[], path: (string | number)[]): unknown {
  if (!text.includes('${')) return text;
  const whole = WHOLE_REFERENCE.exec(text);
  if (whole && !text.startsWith('$${')) return resolveReference(whole[1]!, scope, problems, path);
  const ESCAPED = '\u0000';
  return text
    .replace(/\$\$\{/g, ESCAPED)
    .replace(REFERENCE, (_match, expression: string) => {
      const resolved = resolveReference(expression, scope, problems, path);
      return typeof resolved === 'string' ? resolved : JSON.stringify(resolved);
    })
    .replace(new RegExp(ESCAPED, 'g'), '${');
}

function resolveReference(expression: string, scope: Scope, problems: InterpolationProblem[], path: (string | number)[]): unknown {
  const [namespace, ...keys] = expression.trim().split('.');
  const root = namespace === undefined ? undefined : scope[namespace];
  if (root === undefined || keys.length === 0) {
    const known = Object.keys(scope).map((name) => `\${${name}.…}`);
    problems.push({ path, detail: `cannot interpolate "\${${expression}}": use one of ${known.join(', ')}` });
    return '';
  }
  let current: unknown = root;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const container = current !== null && typeof current === 'object' ? (current as Record<string, unknown>) : undefined;
    if (container === undefined || !Object.hasOwn(container, key)) {
      const prefix = [namespace, ...keys.slice(0, i)].join('.');
      const suggestion = container ? closestMatch(key, Object.keys(container)) : undefined;
      const hint = suggestion ? ` (did you mean "\${${prefix}.${suggestion}}"?)` : '';
      const what = missingWhat(namespace!, prefix, key, i);
      problems.push({ path, detail: `cannot interpolate "\${${expression}}": ${what}${hint}` });
      return '';
    }
    current = container[key];
  }
  return current;
}

function missingWhat(namespace: string, prefix: string, key: string, depth: number): string {
  if (namespace === 'env') return `environment variable ${key} is not set`;
  if (namespace === 'matrix' && depth === 0) return `no matrix axis "${key}"`;
  return `"${prefix}" has no "${key}"`;
}
