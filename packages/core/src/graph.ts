/** Kahn's algorithm; among stages that are ready together, the order of `ids` decides (file order). */
export function topologicalOrder(ids: readonly string[], upstreamOf: (id: string) => readonly string[]): string[] {
  const remaining = new Map(ids.map((id) => [id, new Set(upstreamOf(id))]));
  const order: string[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining.keys()].filter((id) => remaining.get(id)!.size === 0);
    if (ready.length === 0) throw new Error('topologicalOrder called on a graph with a cycle');
    for (const id of ready) {
      order.push(id);
      remaining.delete(id);
      for (const upstream of remaining.values()) upstream.delete(id);
    }
  }
  return order;
}

/** One cycle as a list of ids, first id repeated at the end (`a -> b -> a`), or undefined. */
export function findCycle(ids: Iterable<string>, upstreamOf: (id: string) => readonly string[]): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const upstream of upstreamOf(id)) {
      const cycle = visit(upstream);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of ids) {
    const cycle = visit(id);
    if (cycle) return cycle.reverse();
  }
  return undefined;
}

/** The ids in `targets` and everything upstream of them. */
export function withUpstream(targets: Iterable<string>, upstreamOf: (id: string) => readonly string[]): Set<string> {
  const selected = new Set<string>();
  const pending = [...targets];
  while (pending.length > 0) {
    const id = pending.pop()!;
    if (selected.has(id)) continue;
    selected.add(id);
    pending.push(...upstreamOf(id));
  }
  return selected;
}
