import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import type { ClassificationReport } from '../ml/metrics.js';
import type { PhaseHistory } from '../ml/model-artifact.js';
import { rocCurve } from '../ml/roc-curve.js';
import { confusionSpec, curvesSpec, perClassSpec, rocSpec, type ClassCurve } from './charts.js';
import { reportPage, type MistakeTile } from './html.js';
import { composeGrid, findMistakes, thumbnails } from './misclassified.js';
import { renderChart } from './render-chart.js';

export interface ReportInput {
  split: string;
  /** What the model grew from, as the pipeline named it. */
  base: string;
  report: ClassificationReport;
  labels: Int32Array;
  /** Row-major [count, classes], as the metrics were computed from. */
  probabilities: Float32Array;
  /** The model's training phases, oldest first. */
  history: readonly PhaseHistory[];
  /** The split's `images.npy` (uint8 [count, S, S, 3]), for the misclassified thumbnails. */
  imagesFile: string;
  /** At most this many misclassified images are shown. */
  maxMistakes?: number;
}

export const REPORT_FILE = 'report.html';
const DEFAULT_MAX_MISTAKES = 48;

/**
 * Writes `report.html` (self-contained: charts as inline SVG, thumbnails as data: URLs) and each chart as
 * a PNG beside it. Same input, same bytes (outputs are content-hashed): nothing in them depends on the
 * time; only the PNGs' text depends on the fonts installed. Returns the names of the files written.
 */
export async function writeReport(dir: string, input: ReportInput): Promise<string[]> {
  const rocs = rocCurves(input);
  const specs: [string, TopLevelSpec | undefined][] = [
    ['curves', input.history.length > 0 ? curvesSpec(input.history) : undefined],
    ['confusion', confusionSpec(input.report)],
    ['per-class', perClassSpec(input.report)],
    ['roc', rocs.length > 0 ? rocSpec(rocs) : undefined],
  ];
  const svgs = new Map<string, string>();
  const written: string[] = [];
  for (const [name, spec] of specs) {
    if (!spec) continue;
    const chart = await renderChart(name, spec);
    svgs.set(name, chart.svg);
    written.push(await save(dir, `${name}.png`, chart.png));
  }
  const mistakes = await mistakeTiles(input);
  if (mistakes.shown.length > 0) {
    written.push(await save(dir, 'misclassified.png', await composeGrid(mistakes.shown, mistakes.thumbnail)));
  }
  const charts = { curves: svgs.get('curves'), confusion: svgs.get('confusion')!, perClass: svgs.get('per-class')!, roc: svgs.get('roc') };
  written.push(await save(dir, REPORT_FILE, reportPage({ split: input.split, base: input.base, report: input.report, charts, mistakes })));
  return written;
}

async function save(dir: string, name: string, data: string | Buffer): Promise<string> {
  await writeFile(join(dir, name), data);
  return name;
}

/** One-vs-rest curves of the classes that have both positives and negatives in the split. */
function rocCurves({ report, labels, probabilities }: ReportInput): ClassCurve[] {
  const classCount = report.classes.length;
  return report.per_class.flatMap((m, c) => {
    const scores = Float64Array.from({ length: labels.length }, (_, i) => probabilities[i * classCount + c]!);
    const points = rocCurve(scores, Uint8Array.from(labels, (label) => (label === c ? 1 : 0)));
    return points && m.roc_auc !== null ? [{ class: m.class, auc: m.roc_auc, points }] : [];
  });
}

async function mistakeTiles(input: ReportInput): Promise<{ total: number; shown: MistakeTile[]; thumbnail: number }> {
  const all = findMistakes(input.labels, input.probabilities, input.report.classes.length);
  const chosen = all.slice(0, input.maxMistakes ?? DEFAULT_MAX_MISTAKES);
  const { size, pngs } = await thumbnails(input.imagesFile, chosen.map((m) => m.index));
  const shown = chosen.map((m, i) => ({
    index: m.index,
    trueClass: input.report.classes[m.label]!,
    predictedClass: input.report.classes[m.predicted]!,
    probability: m.probability,
    png: pngs[i]!,
  }));
  return { total: all.length, shown, thumbnail: size };
}
