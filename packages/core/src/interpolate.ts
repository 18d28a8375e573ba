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
    if (container === undefined || !(key in container)) {
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
