import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep } from '@headstart/core';
import { openSplit, type Split } from '../data/dataset.js';
import { loadModelArtifact, saveModelArtifact, withPhase, type ModelMetadata } from '../ml/model-artifact.js';
import { firstTrainableIndex, splitAtFirstTrainable } from '../ml/model-graph.js';
import { trainingThreads } from '../ml/train-pool.js';
import { TRAINING_PARAMS, describeEpoch, fitWithEarlyStopping, historyMetrics, makeOptimizer, oneHot, type TensorSplit, type TrainingParams } from '../ml/training.js';
import { loadBackend, type Tf } from '../runtime/backend.js';
import { freezeBatchNorm } from '../runtime/batch-norm.js';
import { checkMemory, defaultMemoryBudget, tensorBytes } from '../runtime/memory.js';
import { toModelInput } from '../runtime/preprocessing.js';
import { registerWasmKernels } from '../runtime/wasm-kernels.js';

interface Params extends TrainingParams {
  cache_boundary: boolean;
}

export default defineStep<Params>({
  name: 'fine-tune',
  version: '3',
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
  async run(ctx) {
    const { tf, backend } = await loadBackend(undefined, { log: (line) => ctx.log.info(line) });
    if (backend === 'wasm') registerWasmKernels(tf);
    const { model, metadata } = await loadModelArtifact(tf, ctx.inputs['model']!);
    try {
      if (firstTrainableIndex(model) < 0) throw new StepUserError('nothing in the model is trainable: put an unfreeze stage before fine-tune');
      freezeBatchNorm(model, 'always');
      const split = ctx.params.cache_boundary ? splitAtFirstTrainable(tf, model) : undefined;
      if (ctx.params.cache_boundary && !split) ctx.log.warn('no single tensor separates the frozen part from the trainable one: training the whole model on images');
      const trained = split?.upper ?? model;
      const budget = defaultMemoryBudget(backend);
      const data = await loadTrainingData(tf, ctx.inputs['dataset']!, metadata, split?.lower, budget, ctx.signal);
      if (split) ctx.log.info(`cached the frozen part's output ${split.boundaryShape.join('×')} for ${data.train.count + (data.val?.count ?? 0)} images; training ${trained.layers.length - 1} layers`);
      try {
        trained.compile({ optimizer: makeOptimizer(tf, ctx.params), loss: metadata.binary ? 'binaryCrossentropy' : 'categoricalCrossentropy', metrics: ['accuracy'] });
        const history = await fitWithEarlyStopping(tf, trained, data.train, data.val, {
          epochs: ctx.params.epochs,
          batchSize: ctx.params.batch_size,
          seed: ctx.seed,
          earlyStopping: data.val ? ctx.params.early_stopping : null,
          threads: trainingThreads(data.train.count, ctx.params.batch_size),
          log: (line) => ctx.log.info(line),
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

/**
 * The train and val splits as tensors: the lower part's activations when the model was split (computed
 * once here, instead of once per epoch), the scaled images otherwise.
 */
async function loadTrainingData(tf: Tf, datasetDir: string, metadata: ModelMetadata, lower: Tfjs.LayersModel | undefined, budget: number, signal: AbortSignal): Promise<{ train: TensorSplit; val?: TensorSplit }> {
  const train = await splitTensors(tf, datasetDir, 'train', metadata, lower, budget, signal);
  const hasVal = await openSplit(datasetDir, 'val').then(() => true, () => false);
  if (!hasVal) return { train };
  return { train, val: await splitTensors(tf, datasetDir, 'val', metadata, lower, budget, signal) };
}

async function splitTensors(tf: Tf, datasetDir: string, name: Split, metadata: ModelMetadata, lower: Tfjs.LayersModel | undefined, budget: number, signal: AbortSignal): Promise<TensorSplit> {
  const source = await openSplit(datasetDir, name);
  const rowShape = lower ? (lower.outputs[0]!.shape.slice(1) as number[]) : [metadata.preprocessing.inputSize, metadata.preprocessing.inputSize, metadata.preprocessing.channels];
  checkMemory(tf, budget, tensorBytes([source.count, ...rowShape]) * 3, `the ${name} split's ${lower ? 'activations' : 'images'}`);
  const parts: Tfjs.Tensor[] = [];
  for await (const batch of source.batches(64)) {
    signal.throwIfAborted();
    parts.push(tf.tidy(() => {
      const images = toModelInput(tf, tf.tensor4d(batch.images, [batch.count, source.size, source.size, 3], 'int32'), metadata.preprocessing);
      return lower ? (lower.predict(images) as Tfjs.Tensor) : images;
    }));
  }
  const x = tf.concat(parts);
  tf.dispose(parts);
  const labels = await source.readLabels();
  const y = metadata.binary ? tf.tensor2d(Float32Array.from(labels), [labels.length, 1]) : oneHot(tf, labels, metadata.classes.length);
  return { x, y, count: labels.length };
}
