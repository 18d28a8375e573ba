import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep } from '@headstart/core';
import { SPLITS, openSplit, type Split } from '../data/dataset.js';
import { classificationReport, confusionTable, type ClassificationReport } from '../ml/metrics.js';
import { loadModelArtifact, type ModelMetadata } from '../ml/model-artifact.js';
import { loadBackend, type Tf } from '../runtime/backend.js';
import { toModelInput } from '../runtime/preprocessing.js';

const GATED_METRICS = ['accuracy', 'top_k_accuracy', 'macro_precision', 'macro_recall', 'macro_f1', 'roc_auc'] as const;
type GatedMetric = (typeof GATED_METRICS)[number];

interface Params {
  split: Split;
  top_k: number;
  batch_size: number;
  fail_under: Partial<Record<GatedMetric, number>>;
}

export default defineStep<Params>({
  name: 'evaluate',
  version: '1',
  description: 'Scores a model on one split: accuracy, top-k, per-class precision/recall/F1, confusion matrix, ROC-AUC',
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
    },
  },
  inputs: ['model', 'dataset'],
  outputs: ['metrics'],
  async run(ctx) {
    const { tf, backend } = await loadBackend(undefined, { log: (line) => ctx.log.info(line) });
    const { model, metadata } = await loadModelArtifact(tf, ctx.inputs['model']!);
    try {
      const source = await openSplit(ctx.inputs['dataset']!, ctx.params.split);
      if (source.classes.join('\n') !== metadata.classes.join('\n')) {
        throw new StepUserError(`the dataset's classes (${source.classes.join(', ')}) are not the model's (${metadata.classes.join(', ')})`);
      }
      const { labels, probabilities } = await predictSplit(tf, model, metadata, source, ctx.params.batch_size, ctx.signal, (done) => ctx.progress(done, source.count, 'images'));
      const report = classificationReport(labels, probabilities, metadata.classes, Math.min(ctx.params.top_k, metadata.classes.length));
      await writeFile(join(ctx.outputs['metrics']!, 'metrics.json'), `${JSON.stringify({ split: ctx.params.split, ...report }, null, 2)}\n`);
      logReport(report, ctx.params.split, (line) => ctx.log.info(line));
      return { info: { backend }, metrics: headlineMetrics(report), failedChecks: failedChecks(report, ctx.params.fail_under, ctx.params.split) };
    } finally {
      model.dispose();
    }
  },
});

async function predictSplit(
  tf: Tf, model: Tfjs.LayersModel, metadata: ModelMetadata, source: Awaited<ReturnType<typeof openSplit>>, batchSize: number,
  signal: AbortSignal, progress: (done: number) => void,
): Promise<{ labels: Int32Array; probabilities: Float32Array }> {
  const classCount = metadata.classes.length;
  const labels = new Int32Array(source.count);
  const probabilities = new Float32Array(source.count * classCount);
  let done = 0;
  for await (const batch of source.batches(batchSize)) {
    signal.throwIfAborted();
    const output = tf.tidy(() => {
      const pixels = tf.tensor4d(batch.images, [batch.count, source.size, source.size, 3], 'int32');
      const predicted = model.predict(toModelInput(tf, pixels, metadata.preprocessing)) as Tfjs.Tensor;
      // A binary model's one sigmoid column p becomes the two columns (1 − p, p).
      return metadata.binary ? tf.concat([tf.sub(1, predicted), predicted], 1) : predicted;
    });
    probabilities.set((await output.data()) as Float32Array, done * classCount);
    output.dispose();
    labels.set(batch.labels, done);
    done += batch.count;
    progress(done);
  }
  return { labels, probabilities };
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
