import type { Pipeline } from './pipeline.js';

/**
 * The stage ids a `--stage`/`--force` target names: a stage id; a stage's name in the file, meaning all
 * its instances; or `name@axis=label,…`, the instances with those values (any subset of axes, any order).
 */
export function selectStages(pipeline: Pick<Pipeline, 'stages' | 'order'>, target: string): string[] {
  if (pipeline.stages.has(target)) return [target];
  const at = target.indexOf('@');
  const name = at < 0 ? target : target.slice(0, at);
  const wanted = at < 0 ? [] : target.slice(at + 1).split(',');
  return pipeline.order.filter((id) => {
    if (pipeline.stages.get(id)!.name !== name) return false;
    const labels = new Set(id.slice(name.length + 1).split(','));
    return wanted.every((pair) => labels.has(pair));
  });
}
