import { describe, expect, it } from 'vitest';
import { interpolate } from '../src/index.js';

const scope = { params: { size: 96, name: 'm', list: [1, 2], deep: { lr: 0.1 } }, env: { HOME: '/root' } };

function run(value: unknown) {
  const problems: { path: (string | number)[]; detail: string }[] = [];
  return { value: interpolate(value, scope, problems), problems };
}

describe('interpolation', () => {
  it('keeps the type when the whole value is one reference', () => {
    expect(run('${params.size}').value).toBe(96);
    expect(run('${params.list}').value).toEqual([1, 2]);
    expect(run({ a: ['${params.deep.lr}'] }).value).toEqual({ a: [0.1] });
  });

  it('splices references into longer strings as text', () => {
    expect(run('${params.name}-${params.size}px in ${env.HOME}').value).toBe('m-96px in /root');
    expect(run('${params.list}!').value).toBe('[1,2]!');
  });

  it('reports unknown names with their path and a suggestion', () => {
    const { problems } = run({ a: { b: '${params.sise}' } });
    expect(problems).toEqual([{ path: ['a', 'b'], detail: 'cannot interpolate "${params.sise}": "params" has no "sise" (did you mean "${params.size}"?)' }]);
    expect(run('${nope.x}').problems[0]!.detail).toMatch(/use one of \$\{params\.…\}, \$\{env\.…\}/);
  });

  it('leaves non-strings and plain strings alone', () => {
    expect(run({ n: 1, b: true, s: 'plain', z: null }).value).toEqual({ n: 1, b: true, s: 'plain', z: null });
  });
});
