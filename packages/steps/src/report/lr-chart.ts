import type { TopLevelSpec } from 'vega-lite';
import type { CurvePoint } from '../ml/lr-range-test.js';
import { CONFIG } from './charts.js';

/** The LR range test: smoothed loss against the learning rate on a log axis, the suggestion marked by a rule and a point. */
export function lrFinderSpec(curve: readonly CurvePoint[], suggestion: { lr: number; label: string }): TopLevelSpec {
  const values = curve.filter((p) => Number.isFinite(p.smoothed)).map((p, order) => ({ lr: p.lr, loss: p.smoothed, order }));
  const x = { field: 'lr', type: 'quantitative' as const, title: 'learning rate', scale: { type: 'log' as const }, axis: { format: '.0e' } };
  const onCurve = nearest(values, suggestion.lr);
  return {
    config: CONFIG,
    width: 420,
    height: 240,
    layer: [
      {
        data: { values },
        mark: { type: 'line', color: '#1f77b4' },
        encoding: { x, y: { field: 'loss', type: 'quantitative', title: 'smoothed loss', scale: { zero: false } }, order: { field: 'order', type: 'quantitative' } },
      },
      {
        data: { values: [{ lr: suggestion.lr, label: suggestion.label }] },
        mark: { type: 'rule', color: '#d62728', strokeDash: [4, 3] },
        encoding: { x },
      },
      ...(onCurve
        ? [{
            data: { values: [{ lr: onCurve.lr, loss: onCurve.loss, label: suggestion.label }] },
            layer: [
              { mark: { type: 'point' as const, color: '#d62728', filled: true, size: 60 }, encoding: { x, y: { field: 'loss', type: 'quantitative' as const } } },
              { mark: { type: 'text' as const, align: 'left' as const, dx: 6, dy: -8, color: '#d62728' }, encoding: { x, y: { field: 'loss', type: 'quantitative' as const }, text: { field: 'label', type: 'nominal' as const } } },
            ],
          }]
        : []),
    ],
  } as TopLevelSpec;
}

/** The curve's point whose lr is closest (on the log scale) to `lr`: where the marker sits (minimum/10 lies off the curve's points). */
function nearest(values: readonly { lr: number; loss: number }[], lr: number): { lr: number; loss: number } | undefined {
  let best: { lr: number; loss: number } | undefined;
  for (const value of values) {
    if (!best || Math.abs(Math.log(value.lr / lr)) < Math.abs(Math.log(best.lr / lr))) best = value;
  }
  return best;
}
