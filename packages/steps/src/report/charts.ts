import type { TopLevelSpec } from 'vega-lite';
import type { ClassificationReport } from '../ml/metrics.js';
import type { PhaseHistory } from '../ml/model-artifact.js';
import type { RocPoint } from '../ml/roc-curve.js';

/** Vega-Lite specs for the report's charts, built from plain numbers (data inlined, nothing fetched). */

export const CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  view: { stroke: '#ddd' },
} as const;

/** Class names along x: level while they fit their band (about 7 px a character), slanted when they would overlap. */
function classLabels(classes: readonly string[], band: number, orient: 'top' | 'bottom') {
  const fits = Math.max(...classes.map((name) => name.length)) * 7 <= band - 4;
  if (fits) return { orient, labelAngle: 0 };
  return { orient, labelAngle: -45, labelAlign: orient === 'top' ? ('left' as const) : ('right' as const), labelBaseline: 'middle' as const };
}

interface CurveRow {
  phase: string;
  epoch: number;
  set: 'train' | 'validation';
  value: number;
  best: boolean;
}

/** Each phase's title, numbered so two phases of one kind stay apart. */
export function phaseTitles(history: readonly PhaseHistory[]): string[] {
  return history.map((h, i) => `${i + 1}. ${h.phase}: best epoch ${h.best_epoch}${h.stopped_early ? ', stopped early' : ''}`);
}

function curveRows(history: readonly PhaseHistory[], metric: 'loss' | 'accuracy'): CurveRow[] {
  const titles = phaseTitles(history);
  return history.flatMap((h, i) =>
    h.epochs.flatMap((e) => {
      const validation = metric === 'loss' ? e.val_loss : e.val_accuracy;
      const common = { phase: titles[i]!, epoch: e.epoch, best: e.epoch === h.best_epoch };
      const rows: CurveRow[] = [{ ...common, set: 'train', value: e[metric] }];
      return validation === undefined ? rows : [...rows, { ...common, set: 'validation', value: validation }];
    }),
  );
}

/** Loss (top row) and accuracy (bottom row) per epoch, one column per training phase; dashed: the kept epoch. */
export function curvesSpec(history: readonly PhaseHistory[]): TopLevelSpec {
  const titles = phaseTitles(history);
  const row = (metric: 'loss' | 'accuracy') => ({
    data: { values: curveRows(history, metric) },
    facet: { column: { field: 'phase', type: 'nominal' as const, sort: titles, title: null, header: metric === 'loss' ? {} : { labels: false } } },
    spec: {
      width: 280,
      height: 160,
      layer: [
        { transform: [{ filter: 'datum.best' }], mark: { type: 'rule' as const, color: '#999', strokeDash: [4, 3] }, encoding: { x: { field: 'epoch', type: 'quantitative' as const } } },
        {
          mark: { type: 'line' as const, point: true },
          encoding: {
            x: { field: 'epoch', type: 'quantitative' as const, title: 'epoch', scale: { zero: false }, axis: { tickMinStep: 1, format: 'd' } },
            y: { field: 'value', type: 'quantitative' as const, title: metric, scale: metric === 'accuracy' ? { domain: [0, 1] } : { zero: true } },
            color: { field: 'set', type: 'nominal' as const, title: null, scale: { domain: ['train', 'validation'], range: ['#1f77b4', '#ff7f0e'] }, legend: { orient: 'top' as const } },
          },
        },
      ],
    },
    resolve: { scale: { x: 'independent' as const } },
  });
  return { config: CONFIG, vconcat: [row('loss'), row('accuracy')] } as TopLevelSpec;
}

/** Rows = true class, columns = predicted; colour is the share of the true class's images, the text the count. */
export function confusionSpec(report: ClassificationReport): TopLevelSpec {
  const n = report.classes.length;
  const values = report.confusion.flatMap((counts, t) => {
    const total = counts.reduce((sum, c) => sum + c, 0);
    return counts.map((count, p) => ({ true: report.classes[t]!, predicted: report.classes[p]!, count, share: total === 0 ? 0 : count / total }));
  });
  const cell = Math.max(14, Math.min(40, Math.floor(480 / n)));
  const axis = (title: string) => ({ field: title, type: 'nominal' as const, sort: report.classes, title: `${title} class` });
  const text = {
    mark: { type: 'text' as const, fontSize: Math.min(12, cell / 3) },
    encoding: {
      text: { field: 'count', type: 'quantitative' as const },
      color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' },
    },
  };
  return {
    config: CONFIG,
    data: { values },
    width: { step: cell },
    height: { step: cell },
    encoding: { x: { ...axis('predicted'), axis: classLabels(report.classes, cell, 'top') }, y: axis('true') },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'share', type: 'quantitative', title: 'share of row', scale: { domain: [0, 0.5, 1], range: ['#f7fbff', '#6baed6', '#08306b'], interpolate: 'lab' } } } },
      ...(n <= 20 ? [text] : []),
    ],
  } as TopLevelSpec;
}

/** Precision, recall and F1 side by side for each class. */
export function perClassSpec(report: ClassificationReport): TopLevelSpec {
  const metrics = { precision: 'precision', recall: 'recall', F1: 'f1' } as const;
  const values = report.per_class.flatMap((m) => Object.entries(metrics).map(([metric, key]) => ({ class: m.class, metric, value: m[key] })));
  const band = Math.max(16, Math.min(48, Math.floor(960 / report.classes.length)));
  return {
    config: CONFIG,
    data: { values },
    mark: 'bar',
    width: band * report.classes.length,
    height: 200,
    encoding: {
      x: { field: 'class', type: 'nominal', sort: report.classes, title: 'class', axis: classLabels(report.classes, band, 'bottom') },
      xOffset: { field: 'metric', type: 'nominal', sort: Object.keys(metrics) },
      y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: null },
      color: { field: 'metric', type: 'nominal', sort: Object.keys(metrics), title: null },
    },
  } as TopLevelSpec;
}

export interface ClassCurve {
  class: string;
  auc: number;
  points: RocPoint[];
}

/** One-vs-rest ROC curve per class, with the chance diagonal. */
export function rocSpec(curves: readonly ClassCurve[]): TopLevelSpec {
  const names = curves.map((c) => `${c.class} (AUC ${c.auc.toFixed(3)})`);
  const values = curves.flatMap((c, i) => c.points.map((p, order) => ({ curve: names[i]!, fpr: p.fpr, tpr: p.tpr, order })));
  return {
    config: CONFIG,
    width: 360,
    height: 360,
    layer: [
      { data: { values: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] }, mark: { type: 'line', color: '#bbb', strokeDash: [4, 4] }, encoding: { x: { field: 'fpr', type: 'quantitative' }, y: { field: 'tpr', type: 'quantitative' } } },
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: {
          x: { field: 'fpr', type: 'quantitative', title: 'false positive rate', scale: { domain: [0, 1] } },
          y: { field: 'tpr', type: 'quantitative', title: 'true positive rate', scale: { domain: [0, 1] } },
          color: { field: 'curve', type: 'nominal', sort: names, title: 'class', scale: { scheme: curves.length <= 10 ? 'category10' : 'category20' }, legend: { labelLimit: 360 } },
          order: { field: 'order', type: 'quantitative' },
        },
      },
    ],
  } as TopLevelSpec;
}
