import type { ClassificationReport } from '../ml/metrics.js';
import { escapeMarkup as escapeHtml } from './escape.js';
import type { Tile } from './misclassified.js';

export interface MistakeTile extends Tile {
  /** Row of the image in the split. */
  index: number;
}

export interface PageContent {
  split: string;
  /** The model's base (`mobilenet_v2`, `file:…`). */
  base: string;
  report: ClassificationReport;
  /** Inline SVG of each chart; a missing one is explained instead (no history, a single-class split). */
  charts: { curves?: string; confusion: string; perClass: string; roc?: string };
  mistakes: { total: number; shown: MistakeTile[]; thumbnail: number };
}

/** No request of any kind leaves the page: everything it shows is inline. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

const STYLE = `
body { font: 14px/1.45 "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1200px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.subtitle, .note { color: #666; }
table { border-collapse: collapse; margin: 8px 0; } th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
figure.chart { margin: 8px 0; overflow-x: auto; } figure.chart svg { display: block; }
.mistakes { display: flex; flex-wrap: wrap; gap: 8px; }
.mistakes figure { margin: 0; width: 132px; text-align: center; font-size: 12px; }
.mistakes img { image-rendering: pixelated; border: 1px solid #ccc; }
.mistakes figcaption { overflow-wrap: anywhere; }
`;

const percent = (value: number) => `${(value * 100).toFixed(1)} %`;
const decimal = (value: number | null) => (value === null ? 'n/a' : value.toFixed(3));

export function reportPage(content: PageContent): string {
  const title = `Evaluation on the ${content.split} split`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="subtitle">${content.report.count} images, ${content.report.classes.length} classes; model grown from <code>${escapeHtml(content.base)}</code></p>
${summaryTable(content.report)}
<h2>Training curves</h2>
${chartOrNote('curves', content.charts.curves, 'The model records no training history.')}
<h2>Confusion matrix</h2>
${chartOrNote('confusion', content.charts.confusion, '')}
<h2>Per-class precision, recall and F1</h2>
${chartOrNote('per-class', content.charts.perClass, '')}
${perClassTable(content.report)}
<h2>ROC curves (one vs rest)</h2>
${chartOrNote('roc', content.charts.roc, 'No class has both positives and negatives in this split.')}
<h2>Misclassified images</h2>
${mistakesSection(content.mistakes)}
</body>
</html>
`;
}

function summaryTable(report: ClassificationReport): string {
  const rows: [string, string][] = [
    ['accuracy', percent(report.accuracy)],
    [`top-${report.top_k} accuracy`, percent(report.top_k_accuracy)],
    ['macro precision', decimal(report.macro_precision)],
    ['macro recall', decimal(report.macro_recall)],
    ['macro F1', decimal(report.macro_f1)],
    ['ROC-AUC', decimal(report.roc_auc)],
  ];
  return `<table class="summary">${rows.map(([name, value]) => `<tr><th>${name}</th><td>${value}</td></tr>`).join('')}</table>`;
}

function chartOrNote(name: string, svg: string | undefined, note: string): string {
  return svg === undefined ? `<p class="note">${note}</p>` : `<figure class="chart" id="chart-${name}">${svg}</figure>`;
}

function perClassTable(report: ClassificationReport): string {
  const header = '<tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>ROC-AUC</th></tr>';
  const rows = report.per_class.map((m) => `<tr><td>${escapeHtml(m.class)}</td><td>${decimal(m.precision)}</td><td>${decimal(m.recall)}</td><td>${decimal(m.f1)}</td><td>${m.support}</td><td>${decimal(m.roc_auc)}</td></tr>`);
  return `<table class="per-class">${header}${rows.join('')}</table>`;
}

function mistakesSection(mistakes: PageContent['mistakes']): string {
  if (mistakes.total === 0) return '<p class="note">Every image was classified correctly.</p>';
  const shown = mistakes.shown.length < mistakes.total ? `the ${mistakes.shown.length} most confident of ${mistakes.total}` : `all ${mistakes.total}`;
  const figures = mistakes.shown.map((m) => {
    const alt = `image ${m.index}: true ${m.trueClass}, predicted ${m.predictedClass}`;
    const src = `data:image/png;base64,${m.png.toString('base64')}`;
    const caption = `true <b>${escapeHtml(m.trueClass)}</b><br>predicted <b>${escapeHtml(m.predictedClass)}</b> (${m.probability.toFixed(2)})`;
    return `<figure data-index="${m.index}"><img src="${src}" width="${mistakes.thumbnail}" height="${mistakes.thumbnail}" alt="${escapeHtml(alt)}"><figcaption>${caption}</figcaption></figure>`;
  });
  return `<p class="note">Showing ${shown} misclassified images, most confident first.</p>\n<div class="mistakes">${figures.join('\n')}</div>`;
}
