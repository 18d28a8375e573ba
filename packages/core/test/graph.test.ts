import { describe, expect, it } from 'vitest';
import { findCycle, topologicalOrder, withUpstream } from '../src/index.js';

const graph: Record<string, string[]> = { a: [], b: ['a'], c: ['a'], d: ['b', 'c'], e: [] };
const up = (id: string) => graph[id] ?? [];

describe('graph', () => {
  it('orders upstream first, ties in the given order', () => {
    expect(topologicalOrder(['d', 'c', 'b', 'a', 'e'], up)).toEqual(['a', 'e', 'c', 'b', 'd']);
  });

  it('finds no cycle in a DAG and names one when there is', () => {
    expect(findCycle(Object.keys(graph), up)).toBeUndefined();
    const cyclic: Record<string, string[]> = { a: ['c'], b: ['a'], c: ['b'], d: [] };
    expect(findCycle(['d', 'a', 'b', 'c'], (id) => cyclic[id]!)).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(['x'], () => ['x'])).toEqual(['x', 'x']);
  });

  it('selects a target with everything upstream of it', () => {
    expect([...withUpstream(['d'], up)].sort()).toEqual(['a', 'b', 'c', 'd']);
    expect([...withUpstream(['c'], up)].sort()).toEqual(['a', 'c']);
  });
});
