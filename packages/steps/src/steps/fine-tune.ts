import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep } from '@headstart/core';
import { openSplit, type PreprocessedSplit, type Split } from '../data/dataset.js';
import { loadModelArtifact, saveModelArtifact, withPhase, type ModelMetadata } from '../ml/model-artifact.js';
import { firstTrainableIndex, splitAtFirstTrainable } from '../ml/model-graph.js';
import { startEpochTrainer } from '../ml/data-parallel/epochs.js';
import { PredictionPool, predictionThreads } from '../ml/prediction-pool.js';
import { TRAINING_PARAMS, describeEpoch, fitWithEarlyStopping, historyMetrics, makeOptimizer, oneHot, type TensorSplit, type TrainingParams } from '../ml/training.js';
import { backendSetting, loadBackend, type BackendName, type Tf } from '../runtime/backend.js';
import { freezeBatchNorm } from '../runtime/batch-norm.js';
import { checkMemory, defaultMemoryBudget, tensorBytes } from '../runtime/memory.js';
import { toModelInput } from '../runtime/preprocessing.js';
import { metricsFromHistory } from '../ml/history-summary.js';

interface Params extends TrainingParams {
  cache_boundary: boolean;
}

export default defineStep<Params>({
  name: 'fine-tune',
  version: '5',
  description: 'Trains the unfrozen layers at a low learning rate, keeping the best validation epoch',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      optimizer: TRAINING_PARAMS.optimizer,
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.0001, description: '1e-4 suits the top blocks; Keras uses 1e-5 when the whole base is unfrozen' },
      momentum: TRAINING_PARAMS.momentum,
      epochs: { type: 'integer', minimum: 1, default: 5 },
      batch_size: TRAINING_PARAMS.batch_size,
      early_stopping: { ...TRAINING_PARAMS.early_stopping, default: { patience: 3, monitor: 'val_accuracy' } },
      cache_boundary: { type: 'boolean', default: true, description: 'run the frozen lower part once and train only the upper part on its activations' },
    },
  },
  inputs: ['model', 'dataset'],
  outputs: ['model', 'history'],
  summarize: (ctx) => metricsFromHistory(ctx.outputs),
  async run(ctx) {
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const { model, metadata } = await loadModelArtifact(tf, ctx.inputs['model']!);
    try {
      if (firstTrainableIndex(model) < 0) throw new StepUserError('nothing in the model is trainable: put an unfreeze stage before fine-tune');
      freezeBatchNorm(model, 'always');
      const split = ctx.params.cache_boundary ? splitAtFirstTrainable(tf, model) : undefined;
      if (ctx.params.cache_boundary && !split) ctx.log.warn('no single tensor separates the frozen part from the trainable one: training the whole model on images');
      const trained = split?.upper ?? model;
      const budget = defaultMemoryBudget(backend);
      const started = performance.now();
      const data = await loadTrainingData({ tf, datasetDir: ctx.inputs['dataset']!, modelDir: ctx.inputs['model']!, metadata, lower: split?.lower, backend, budget, requestedThreads: ctx.settings.threads, signal: ctx.signal });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (split) ctx.log.info(`cached the frozen part's output ${split.boundaryShape.join('×')} for ${data.train.count + (data.val?.count ?? 0)} images in ${seconds} s (${data.threads} thread${data.threads > 1 ? 's' : ''}); training ${trained.layers.length - 1} layers`);
      try {
        trained.compile({ optimizer: makeOptimizer(tf, ctx.params), loss: metadata.binary ? 'binaryCrossentropy' : 'categoricalCrossentropy', metrics: ['accuracy'] });
        const trainer = await startEpochTrainer(tf, trained, data, { batchSize: ctx.params.batch_size, requestedThreads: ctx.settings.threads, log: (line) => ctx.log.info(line) });
        const history = await fitWithEarlyStopping(trained, trainer, {
          epochs: ctx.params.epochs,
          seed: ctx.seed,
          earlyStopping: data.val ? ctx.params.early_stopping : null,
          signal: ctx.signal,
          onEpoch: (r) => {
            ctx.progress(r.epoch, ctx.params.epochs, 'epochs');
            ctx.log.info(describeEpoch(r));
          },
        });
        await writeFile(join(ctx.outputs['history']!, 'history.json'), `${JSON.stringify({ phase: 'fine-tune', cached_boundary: Boolean(split), ...history }, null, 2)}\n`);
        await saveModelArtifact(model, ctx.outputs['model']!, withPhase(metadata, 'fine-tune', history));
        return { info: { backend }, metrics: historyMetrics(history) };
      } finally {
        tf.dispose([data.train.x, data.train.y, ...(data.val ? [data.val.x, data.val.y] : [])]);
      }
    } finally {
      model.dispose();
    }
  },
});

/** Images per batch when computing the frozen part's activations (or scaling the images). */
const INPUT_BATCH = 64;

interface TrainingInputs {
  tf: Tf;
  datasetDir: string;
  modelDir: string;
  metadata: ModelMetadata;
  /** The frozen part below the boundary, when the model was split. */
  lower: Tfjs.LayersModel | undefined;
  backend: BackendName;
  budget: number;
  /** The user's thread count (`ctx.settings.threads`). */
  requestedThreads: number | undefined;
  signal: AbortSignal;
}

/**
 * The train and val splits as tensors: the lower part's activations when the model was split (computed
 * once here, instead of once per epoch, on prediction threads when there are enough images), the scaled
 * images otherwise.
 */
async function loadTrainingData(o: TrainingInputs): Promise<{ train: TensorSplit; val?: TensorSplit; threads: number }> {
  const train = await openSplit(o.datasetDir, 'train');
  const val = await openSplit(o.datasetDir, 'val').catch(() => undefined);
  const threads = o.lower ? predictionThreads(train.count + (val?.count ?? 0), INPUT_BATCH, o.requestedThreads) : 1;
  const pool = threads > 1 ? await PredictionPool.start(threads, { backend: o.backend, model: { kind: 'artifact', dir: o.modelDir, part: 'frozen' }, size: train.size, batchSize: INPUT_BATCH }) : undefined;
  try {
    const trainTensors = await splitTensors(o, 'train', train, pool);
    return val ? { train: trainTensors, val: await splitTensors(o, 'val', val, pool), threads } : { train: trainTensors, threads };
  } finally {
    await pool?.close();
  }
}

async function splitTensors(o: TrainingInputs, name: Split, source: PreprocessedSplit, pool: PredictionPool | undefined): Promise<TensorSplit> {
  const { tf, lower, metadata } = o;
  const rowShape = lower ? (lower.outputs[0]!.shape.slice(1) as number[]) : [metadata.preprocessing.inputSize, metadata.preprocessing.inputSize, metadata.preprocessing.channels];
  checkMemory(tf, o.budget, tensorBytes([source.count, ...rowShape]) * 3, `the ${name} split's ${lower ? 'activations' : 'images'}`);
  const parts: Tfjs.Tensor[] = [];
  if (pool) {
    const rowSize = rowShape.reduce((a, b) => a * b, 1);
    for await (const output of pool.predict(source.batches(INPUT_BATCH), o.signal)) parts.push(tf.tensor(output, [output.length / rowSize, ...rowShape]));
  } else {
    for await (const batch of source.batches(INPUT_BATCH)) {
      o.signal.throwIfAborted();
      parts.push(tf.tidy(() => {
        const images = toModelInput(tf, tf.tensor4d(batch.images, [batch.count, source.size, source.size, 3], 'int32'), metadata.preprocessing);
        return lower ? (lower.predict(images, { batchSize: INPUT_BATCH }) as Tfjs.Tensor) : images;
      }));
    }
  }
  const x = tf.concat(parts);
  tf.dispose(parts);
  const labels = await source.readLabels();
  const y = metadata.binary ? tf.tensor2d(Float32Array.from(labels), [labels.length, 1]) : oneHot(tf, labels, metadata.classes.length);
  return { x, y, count: labels.length };
}
