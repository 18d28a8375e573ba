import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError, defineStep } from '@headstart/core';
import { SPLITS, openSplit, splitFiles, type PreprocessedSplit, type Split } from '../data/dataset.js';
import { flipAveraged } from '../ml/batch-prediction.js';
import { classificationReport, confusionTable, type ClassificationReport } from '../ml/metrics.js';
import { readModelMetadata, type ModelMetadata } from '../ml/model-artifact.js';
import { modelOutputs } from '../ml/model-outputs.js';
import { predictionThreads } from '../ml/prediction-pool.js';
import { backendSetting, loadBackend, type BackendName, type Tf } from '../runtime/backend.js';

/** What metrics.json adds with test-time augmentation; the report's own metrics stay the plain model's. */
const TTA_METRICS = ['tta_accuracy', 'tta_top_k_accuracy'] as const;
const GATED_METRICS = ['accuracy', 'top_k_accuracy', 'macro_precision', 'macro_recall', 'macro_f1', 'roc_auc', ...TTA_METRICS] as const;
type GatedMetric = (typeof GATED_METRICS)[number];

interface Params {
  split: Split;
  top_k: number;
  batch_size: number;
  fail_under: Partial<Record<GatedMetric, number>>;
  max_drop: Partial<Record<GatedMetric, number>>;
  /** Absent (no schema default, so existing stages keep their cache keys) means no test-time augmentation. */
  tta?: { flip: boolean };
}

/** metrics.json: the split, the plain model's report, and with `tta` the accuracies of the averaged predictions. */
type EvaluateMetrics = ClassificationReport & { split: Split; tta?: { flip: true } } & Partial<Record<(typeof TTA_METRICS)[number], number>>;

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
      tta: {
        type: 'object',
        additionalProperties: false,
        required: ['flip'],
        description: 'test-time augmentation: `flip: true` also predicts every image mirrored left to right and averages the two outputs (softmax, or a binary model\'s sigmoid). metrics.json and the report keep the plain model\'s numbers (`accuracy`, …) and metrics.json adds `tta_accuracy` and `tta_top_k_accuracy` (as fastai\'s `learn.tta()` sits beside `learn.validate()`); both can be gated by fail_under and max_drop. Absent: off',
        properties: { flip: { type: 'boolean', description: 'average the prediction on each image with the one on its horizontal mirror image' } },
      },
    },
  },
  inputs: ['model', 'dataset'],
  outputs: ['metrics', 'report'],
  async run(ctx) {
    const flip = ctx.params.tta?.flip ?? false;
    if (!flip) refuseTtaGates(ctx.params);
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const metadata = await readModelMetadata(ctx.inputs['model']!);
    const source = await openSplit(ctx.inputs['dataset']!, ctx.params.split);
    if (source.classes.join('\n') !== metadata.classes.join('\n')) {
      throw new StepUserError(`the dataset's classes (${source.classes.join(', ')}) are not the model's (${metadata.classes.join(', ')})`);
    }
    const { labels, probabilities, ttaProbabilities, threads } = await predictSplit(tf, metadata, source, { modelDir: ctx.inputs['model']!, backend, batchSize: ctx.params.batch_size, requestedThreads: ctx.settings.threads, flip }, ctx.signal, (done) => ctx.progress(done, source.count, 'images'));
    const topK = Math.min(ctx.params.top_k, metadata.classes.length);
    const report = classificationReport(labels, probabilities, metadata.classes, topK);
    const metrics: EvaluateMetrics = { split: ctx.params.split, ...report, ...(ttaProbabilities ? ttaMetrics(classificationReport(labels, ttaProbabilities, metadata.classes, topK)) : {}) };
    await writeFile(join(ctx.outputs['metrics']!, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    logReport(report, ctx.params.split, (line) => ctx.log.info(line));
    if (metrics.tta_accuracy !== undefined) ctx.log.info(`${ctx.params.split} with test-time augmentation (flip): accuracy ${metrics.tta_accuracy.toFixed(4)}, top-${report.top_k} ${metrics.tta_top_k_accuracy!.toFixed(4)}`);
    const { writeReport } = await import('../report/write-report.js');
    await writeReport(ctx.outputs['report']!, { split: ctx.params.split, base: metadata.base.ref, report, labels, probabilities, history: metadata.history ?? [], imagesFile: splitFiles(ctx.inputs['dataset']!, ctx.params.split).images });
    return { info: { backend, threads }, metrics: headlineMetrics(metrics), failedChecks: failedChecks(metrics, ctx.params.fail_under, ctx.params.split) };
  },
  /** The numbers `run` returned, from the metrics.json it wrote. */
  async summarize(ctx) {
    const report = JSON.parse(await readFile(join(ctx.outputs['metrics']!, 'metrics.json'), 'utf8')) as EvaluateMetrics;
    return { metrics: headlineMetrics(report), failedChecks: failedChecks(report, ctx.params.fail_under, ctx.params.split) };
  },
});

async function predictSplit(
  tf: Tf, metadata: ModelMetadata, source: PreprocessedSplit, o: { modelDir: string; backend: BackendName; batchSize: number; requestedThreads: number | undefined; flip: boolean },
  signal: AbortSignal, progress: (done: number) => void,
): Promise<{ labels: Int32Array; probabilities: Float32Array; ttaProbabilities: Float32Array | undefined; threads: number }> {
  const classCount = metadata.classes.length;
  const labels = await source.readLabels();
  const probabilities = new Float32Array(source.count * classCount);
  const ttaProbabilities = o.flip ? new Float32Array(source.count * classCount) : undefined;
  const threads = predictionThreads(source.count, o.batchSize, o.requestedThreads);
  let done = 0;
  for await (const batch of modelOutputs(tf, source.batches(o.batchSize), { ...o, size: source.size, threads, signal })) {
    const columns = classColumns(batch.output, metadata.binary);
    probabilities.set(columns, done * classCount);
    ttaProbabilities?.set(classColumns(flipAveraged(batch), metadata.binary), done * classCount);
    done += columns.length / classCount;
    progress(done);
  }
  return { labels, probabilities, ttaProbabilities, threads };
}

/** A batch's rows of class probabilities: a binary model's one sigmoid column p becomes the two columns (1 − p, p). */
function classColumns(output: Float32Array, binary: boolean): Float32Array {
  return binary ? Float32Array.from({ length: output.length * 2 }, (_, i) => (i % 2 ? output[i >> 1]! : 1 - output[i >> 1]!)) : output;
}

function ttaMetrics(report: ClassificationReport): Pick<EvaluateMetrics, 'tta' | (typeof TTA_METRICS)[number]> {
  return { tta: { flip: true }, tta_accuracy: report.accuracy, tta_top_k_accuracy: report.top_k_accuracy };
}

/** A gate on a TTA metric would never be checked without TTA. */
function refuseTtaGates(params: Params): void {
  for (const gate of ['fail_under', 'max_drop'] as const) {
    const metric = TTA_METRICS.find((name) => params[gate][name] !== undefined);
    if (metric) throw new StepUserError(`${gate}.${metric} needs test-time augmentation: add \`tta: { flip: true }\``);
  }
}


function headlineMetrics(report: EvaluateMetrics): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (const name of GATED_METRICS) {
    const value = report[name];
    if (typeof value === 'number') metrics[name] = Math.round(value * 10000) / 10000;
  }
  return metrics;
}

function failedChecks(report: EvaluateMetrics, thresholds: Params['fail_under'], split: Split): string[] {
  return Object.entries(thresholds).flatMap(([name, threshold]) => {
    const value = report[name as GatedMetric];
    if (value === null) return [`${name} is undefined on the ${split} split (a class without positives or negatives), so fail_under ${threshold} cannot pass`];
    if (value === undefined) return []; // a TTA metric without TTA: refuseTtaGates stopped the run
    return value < threshold! ? [`${name} ${value.toFixed(4)} on the ${split} split is below fail_under ${threshold}`] : [];
  });
}

function logReport(report: ClassificationReport, split: Split, log: (line: string) => void): void {
  log(`${split}: ${report.count} images, accuracy ${report.accuracy.toFixed(4)}, top-${report.top_k} ${report.top_k_accuracy.toFixed(4)}, macro F1 ${report.macro_f1.toFixed(4)}, ROC-AUC ${report.roc_auc?.toFixed(4) ?? 'n/a'}`);
  for (const line of confusionTable(report)) log(line);
}
