import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { classificationReport } from '../../src/ml/metrics.js';
import type { PhaseHistory } from '../../src/ml/model-artifact.js';
import { writeNpy } from '../../src/runtime/npy.js';
import { writeReport, type ReportInput } from '../../src/report/write-report.js';
import { tempDir } from '../data/fixtures.js';

const SIZE = 28;
const CLASSES = ['zero', 'one', 'two'];
// 9 images; rows are class probabilities. Mistakes: 2 (→ one, 0.7), 5 (→ zero, 0.5), 7 (→ zero, 0.9).
const labels = Int32Array.from([0, 0, 0, 1, 1, 1, 2, 2, 2]);
const probabilities = Float32Array.from([
  0.8, 0.1, 0.1,
  0.6, 0.3, 0.1,
  0.2, 0.7, 0.1,
  0.1, 0.8, 0.1,
  0.2, 0.6, 0.2,
  0.5, 0.3, 0.2,
  0.1, 0.1, 0.8,
  0.9, 0.05, 0.05,
  0.3, 0.1, 0.6,
]);
const history: PhaseHistory[] = [
  { phase: 'head', best_epoch: 3, stopped_early: false, epochs: [1, 2, 3].map((epoch) => ({ epoch, loss: 1.5 / epoch, accuracy: 0.5 + epoch / 10, val_loss: 1.6 / epoch, val_accuracy: 0.45 + epoch / 10, seconds: 1 })) },
  { phase: 'fine-tune', best_epoch: 1, stopped_early: true, epochs: [1, 2].map((epoch) => ({ epoch, loss: 0.4 / epoch, accuracy: 0.85, val_loss: 0.5 + epoch / 10, val_accuracy: 0.8, seconds: 2 })) },
];

/** Image i is a dark square with a bright bar whose height is i + 1 rows, so each is told apart by its pixels. */
function images(): Uint8Array {
  const pixels = new Uint8Array(labels.length * SIZE * SIZE * 3).fill(20);
  for (let i = 0; i < labels.length; i++) {
    for (let y = 0; y <= i; y++) pixels.fill(240, ((i * SIZE + y) * SIZE + 4) * 3, ((i * SIZE + y) * SIZE + 24) * 3);
  }
  return pixels;
}

const PNGS = ['curves.png', 'confusion.png', 'per-class.png', 'roc.png', 'misclassified.png'];
let input: ReportInput;
let first: string;
let html: string;

async function render(name: string, overrides: Partial<ReportInput> = {}): Promise<string> {
  const dir = path.join(await tempDir('headstart-report-'), name);
  await mkdir(dir);
  await writeReport(dir, { ...input, ...overrides });
  return dir;
}

beforeAll(async () => {
  const imagesFile = path.join(await tempDir('headstart-report-split-'), 'images.npy');
  await writeNpy(imagesFile, images(), [labels.length, SIZE, SIZE, 3]);
  input = { split: 'test', base: 'mnist_cnn', report: classificationReport(labels, probabilities, CLASSES, 2), labels, probabilities, history, imagesFile };
  first = await render('first');
  html = await readFile(path.join(first, 'report.html'), 'utf8');
});

describe('the evaluation report', () => {
  it('writes the page and one PNG per chart, each a readable image of a sane size', async () => {
    expect((await readdir(first)).sort()).toEqual([...PNGS, 'report.html'].sort());
    for (const file of PNGS) {
      const { width, height, format } = await sharp(path.join(first, file)).metadata();
      expect(format, file).toBe('png');
      expect(width, file).toBeGreaterThan(200);
      expect(height, file).toBeGreaterThan(60);
      expect(width! * height!, file).toBeLessThan(4000 * 4000);
    }
  });

  it('inlines every chart as SVG, with the data it was given', () => {
    for (const chart of ['curves', 'confusion', 'per-class', 'roc']) {
      expect(html, chart).toMatch(new RegExp(`<figure class="chart" id="chart-${chart}"><svg [^>]*class="marks"`));
    }
    const svg = (chart: string) => html.split(`id="chart-${chart}">`)[1]!.split('</figure>')[0]!;
    expect(svg('curves')).toContain('1. head: best epoch 3');
    expect(svg('curves')).toContain('2. fine-tune: best epoch 1, stopped early');
    expect(svg('roc')).toContain(`zero (AUC ${input.report.per_class[0]!.roc_auc!.toFixed(3)})`);
    expect(svg('confusion')).toContain('predicted class');
    expect(html).toContain('<td>one</td><td>0.667</td><td>0.667</td><td>0.667</td><td>3</td>');
  });

  it('requests nothing: no URL but data: ones and in-page references', () => {
    const references = [...html.matchAll(/\b(?:src|href)="([^"]*)"|url\(([^)]*)\)/g)].map((m) => m[1] ?? m[2]!);
    expect(references.length).toBeGreaterThan(0);
    expect(references.filter((url) => !url.startsWith('data:image/png;base64,') && !url.startsWith('#'))).toEqual([]);
    expect(html).toContain(`content="default-src 'none'; img-src data:; style-src 'unsafe-inline'"`);
  });

  it('shows the misclassified images, most confident first, each with its own pixels', async () => {
    const figures = [...html.matchAll(/<figure data-index="(\d+)"><img src="data:image\/png;base64,([^"]+)"[^>]*><figcaption>(.*?)<\/figcaption>/g)];
    expect(figures.map((f) => Number(f[1]))).toEqual([7, 2, 5]);
    expect(figures[0]![3]).toBe('true <b>two</b><br>predicted <b>zero</b> (0.90)');
    for (const [, index, base64] of figures) {
      const { data, info } = await sharp(Buffer.from(base64!, 'base64')).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([84, 84]);
      // The bar covers rows 0..index of the 28 px image: 3× that in the thumbnail.
      const brightRows = Array.from({ length: 84 }, (_, y) => data[(y * 84 + 42) * info.channels]! > 128).filter(Boolean).length;
      expect(brightRows).toBe(3 * (Number(index) + 1));
    }
    const grid = await sharp(path.join(first, 'misclassified.png')).metadata();
    expect([grid.width, grid.height]).toEqual([3 * 132, 84 + 32 + 12]);
  });

  it('caps the misclassified images shown and says how many there were', async () => {
    const dir = await render('capped', { maxMistakes: 2 });
    const capped = await readFile(path.join(dir, 'report.html'), 'utf8');
    expect([...capped.matchAll(/<figure data-index="(\d+)">/g)].map((m) => Number(m[1]))).toEqual([7, 2]);
    expect(capped).toContain('Showing the 2 most confident of 3 misclassified images');
  });

  it('says so instead of drawing what it lacks: no history, no mistakes', async () => {
    const perfect = Float32Array.from([...labels].flatMap((label) => CLASSES.map((_, c) => (c === label ? 1 : 0))));
    const dir = await render('bare', { history: [], probabilities: perfect, report: classificationReport(labels, perfect, CLASSES, 2) });
    expect((await readdir(dir)).sort()).toEqual(['confusion.png', 'per-class.png', 'report.html', 'roc.png']);
    const bare = await readFile(path.join(dir, 'report.html'), 'utf8');
    expect(bare).toContain('The model records no training history.');
    expect(bare).toContain('Every image was classified correctly.');
  });

  it('is the same bytes when rendered again', async () => {
    const second = await render('second');
    for (const file of [...PNGS, 'report.html']) {
      expect((await readFile(path.join(second, file))).equals(await readFile(path.join(first, file))), file).toBe(true);
    }
  });
});
