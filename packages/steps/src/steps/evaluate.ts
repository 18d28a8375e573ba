import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError, defineStep } from '@headstart/core';
import { SPLITS, openSplit, splitFiles, type PreprocessedSplit, type Split } from '../data/dataset.js';
import { classificationReport, confusionTable, type ClassificationReport } from '../ml/metrics.js';
import { readModelMetadata, type ModelMetadata } from '../ml/model-artifact.js';
import { modelOutputs } from '../ml/model-outputs.js';
import { predictionThreads } from '../ml/prediction-pool.js';
import { loadBackend, type BackendName, type Tf } from '../runtime/backend.js';

const GATED_METRICS = ['accuracy', 'top_k_accuracy', 'macro_precision', 'macro_recall', 'macro_f1', 'roc_auc'] as const;
type GatedMetric = (typeof GATED_METRICS)[number];

interface Params {
  split: Split;
  top_k: number;
  batch_size: number;
  fail_under: Partial<Record<GatedMetric, number>>;
  max_drop: Partial<Record<GatedMetric, number>>;
}

export default defineStep<Params>({
  name: 'evaluate',
  version: '2',
  description: 'Scores a model on one split: accuracy, top-k, per-class precision/recall/F1, confusion matrix, ROC-AUC; writes an HTML report with its charts',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      split: { enum: [...SPLITS], default: 'test' },
      top_k: { type: 'integer', minimum: 1, default: 3 },
      batch_size: { type: 'integer', minimum: 1, default: 64 },
      fail_under: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'a metric below its threshold makes the run exit with code 3 (for CI)',
        properties: Object.fromEntries(GATED_METRICS.map((m) => [m, { type: 'number', minimum: 0, maximum: 1 }])),
      },
      max_drop: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'a metric that fell by more than this against the baseline lock file (`headstart run --baseline REV`, default HEAD) makes the run exit with code 3',
        properties: Object.fromEntries(GATED_METRICS.map((m) => [m, { type: 'number', minimum: 0, maximum: 1 }])),
      },
    },
  },
  inputs: ['model', 'dataset'],
  outputs: ['metrics', 'report'],
  async run(ctx) {
    const { tf, backend } = await loadBackend(undefined, { log: (line) => ctx.log.info(line) });
    const metadata = await readModelMetadata(ctx.inputs['model']!);
    const source = await openSplit(ctx.inputs['dataset']!, ctx.params.split);
    if (source.classes.join('\n') !== metadata.classes.join('\n')) {
      throw new StepUserError(`the dataset's classes (${source.classes.join(', ')}) are not the model's (${metadata.classes.join(', ')})`);
    }
    const { labels, probabilities, workers } = await predictSplit(tf, metadata, source, { modelDir: ctx.inputs['model']!, backend, batchSize: ctx.params.batch_size }, ctx.signal, (done) => ctx.progress(done, source.count, 'images'));
    const report = classificationReport(labels, probabilities, metadata.classes, Math.min(ctx.params.top_k, metadata.classes.length));
    await writeFile(join(ctx.outputs['metrics']!, 'metrics.json'), `${JSON.stringify({ split: ctx.params.split, ...report }, null, 2)}\n`);
    logReport(report, ctx.params.split, (line) => ctx.log.info(line));
    const { writeReport } = await import('../report/write-report.js');
    await writeReport(ctx.outputs['report']!, { split: ctx.params.split, base: metadata.base.ref, report, labels, probabilities, history: metadata.history ?? [], imagesFile: splitFiles(ctx.inputs['dataset']!, ctx.params.split).images });
    return { info: { backend, workers }, metrics: headlineMetrics(report), failedChecks: failedChecks(report, ctx.params.fail_under, ctx.params.split) };
  },
  /** The numbers `run` returned, from the metrics.json it wrote. */
  async summarize(ctx) {
    const report = JSON.parse(await readFile(join(ctx.outputs['metrics']!, 'metrics.json'), 'utf8')) as ClassificationReport;
    return { metrics: headlineMetrics(report), failedChecks: failedChecks(report, ctx.params.fail_under, ctx.params.split) };
  },
});

async function predictSplit(
  tf: Tf, metadata: ModelMetadata, source: PreprocessedSplit, o: { modelDir: string; backend: BackendName; batchSize: number },
  signal: AbortSignal, progress: (done: number) => void,
): Promise<{ labels: Int32Array; probabilities: Float32Array; workers: number }> {
  const classCount = metadata.classes.length;
  const labels = await source.readLabels();
  const probabilities = new Float32Array(source.count * classCount);
  const workers = predictionThreads(source.count, o.batchSize);
  let done = 0;
  for await (const output of modelOutputs(tf, source.batches(o.batchSize), { ...o, size: source.size, threads: workers, signal })) {
    const rows = metadata.binary ? output.length : output.length / classCount;
    // A binary model's one sigmoid column p becomes the two columns (1 − p, p).
    probabilities.set(metadata.binary ? Float32Array.from({ length: rows * 2 }, (_, i) => (i % 2 ? output[i >> 1]! : 1 - output[i >> 1]!)) : output, done * classCount);
    done += rows;
    progress(done);
  }
  return { labels, probabilities, workers };
}


function headlineMetrics(report: ClassificationReport): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (const name of GATED_METRICS) {
    const value = report[name];
    if (typeof value === 'number') metrics[name] = Math.round(value * 10000) / 10000;
  }
  return metrics;
}

function failedChecks(report: ClassificationReport, thresholds: Params['fail_under'], split: Split): string[] {
  return Object.entries(thresholds).flatMap(([name, threshold]) => {
    const value = report[name as GatedMetric];
    if (value === null) return [`${name} is undefined on the ${split} split (a class without positives or negatives), so fail_under ${threshold} cannot pass`];
    return value < threshold! ? [`${name} ${value.toFixed(4)} on the ${split} split is below fail_under ${threshold}`] : [];
  });
}

function logReport(report: ClassificationReport, split: Split, log: (line: string) => void): void {
  log(`${split}: ${report.count} images, accuracy ${report.accuracy.toFixed(4)}, top-${report.top_k} ${report.top_k_accuracy.toFixed(4)}, macro F1 ${report.macro_f1.toFixed(4)}, ROC-AUC ${report.roc_auc?.toFixed(4) ?? 'n/a'}`);
  for (const line of confusionTable(report)) log(line);
}
