import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep } from '@headstart/core';
import { openSplit, readPreprocessing, type Split } from '../data/dataset.js';
import { saveModelArtifact } from '../ml/model-artifact.js';
import { LAYER_SCHEMAS, TRAINING_PARAMS, checkSchedule, classWeightsFor, compileForTraining, describeEpoch, fitEpochs, fitWithEarlyStopping, historyMetrics, oneHot, type TensorSplit, type TrainingParams } from '../ml/training.js';
import { backendSetting, loadBackend, type Tf } from '../runtime/backend.js';
import { checkMemory, defaultMemoryBudget, tensorBytes } from '../runtime/memory.js';
import { toModelInput, type Preprocessing } from '../runtime/preprocessing.js';
import { metricsFromHistory } from '../ml/history-summary.js';
import { LR_INPUT, LR_SCALE_PARAM, withInputLearningRate, type LrParams } from '../ml/lr-input.js';

type LayerSpec =
  | { conv: number; kernel?: number; activation?: string }
  | { max_pool: number }
  | { dense: number; activation?: string }
  | { dropout: number }
  | { batch_norm: true };

interface Params extends TrainingParams, LrParams {
  layers: LayerSpec[];
}

/** Pixels scaled to [0, 1], like the zoo's bases. */
const RANGE: [number, number] = [0, 1];

export default defineStep<Params>({
  name: 'train',
  version: '6',
  description: 'Trains a model from scratch on the images (the baseline transfer learning has to beat)',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      layers: {
        type: 'array',
        minItems: 1,
        default: [{ conv: 32 }, { max_pool: 2 }, { conv: 64 }, { max_pool: 2 }, { conv: 64 }, { dense: 128 }, { dropout: 0.3 }],
        description: 'conv / max_pool layers, then dense / dropout; a flatten goes before the first dense, the softmax output is added',
        items: {
          oneOf: [LAYER_SCHEMAS.conv, LAYER_SCHEMAS.maxPool, LAYER_SCHEMAS.dense, LAYER_SCHEMAS.dropout, LAYER_SCHEMAS.batchNorm],
        },
      },
      optimizer: TRAINING_PARAMS.optimizer,
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.001 },
      lr_scale: LR_SCALE_PARAM,
      momentum: TRAINING_PARAMS.momentum,
      epochs: { type: 'integer', minimum: 1, default: 10 },
      batch_size: TRAINING_PARAMS.batch_size,
      early_stopping: TRAINING_PARAMS.early_stopping,
      schedule: TRAINING_PARAMS.schedule,
      label_smoothing: TRAINING_PARAMS.label_smoothing,
      class_weight: TRAINING_PARAMS.class_weight,
    },
  },
  inputs: ['dataset'],
  ...LR_INPUT,
  outputs: ['model', 'history'],
  summarize: (ctx) => metricsFromHistory(ctx.outputs),
  async run(ctx) {
    checkSchedule(ctx.params.schedule, ctx.params.epochs);
    ctx = await withInputLearningRate(ctx);
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const datasetDir = ctx.inputs['dataset']!;
    const info = await readPreprocessing(datasetDir);
    if (!info.splits.train) throw new StepUserError('the dataset has no train split');
    const preprocessing: Preprocessing = { inputSize: info.size, channels: 3, range: RANGE, resize: 'bilinear' };
    const budget = defaultMemoryBudget(backend);
    const train = await imageTensors(tf, datasetDir, 'train', preprocessing, budget);
    const val = info.splits.val ? await imageTensors(tf, datasetDir, 'val', preprocessing, budget) : undefined;
    const model = buildModel(tf, preprocessing.inputSize, train.classes.length, ctx.params.layers, ctx.seed);
    try {
      compileForTraining(tf, model, ctx.params, false);
      const classWeight = classWeightsFor(tf, ctx.params.class_weight, train.tensors.y, train.classes.length);
      const trainer = fitEpochs(tf, model, { train: train.tensors, val: val?.tensors }, { batchSize: ctx.params.batch_size, classWeight });
      const history = await fitWithEarlyStopping(model, trainer, {
        epochs: ctx.params.epochs,
        seed: ctx.seed,
        earlyStopping: val ? ctx.params.early_stopping : null,
        schedule: ctx.params.schedule,
        signal: ctx.signal,
        snapshots: { tf, dir: ctx.snapshotDir, log: ctx.log },
        onEpoch: (r) => {
          ctx.progress(r.epoch, ctx.params.epochs, 'epochs');
          ctx.log.info(describeEpoch(r));
        },
      });
      await writeFile(join(ctx.outputs['history']!, 'history.json'), `${JSON.stringify({ phase: 'scratch', ...history }, null, 2)}\n`);
      await saveModelArtifact(model, ctx.outputs['model']!, {
        classes: train.classes,
        preprocessing,
        base: { ref: 'scratch', inputSize: info.size, info: { source: 'scratch', layer: '', pooling: 'none', featureShape: [], preprocessing }, imageDecoding: { size: info.size, fit: info.fit, background: info.background } },
        headLayers: model.layers.map((layer) => layer.name),
        binary: false,
        history: [{ phase: 'scratch', ...history }],
      });
      return { info: { backend }, metrics: historyMetrics(history) };
    } finally {
      tf.dispose([train.tensors.x, train.tensors.y, ...(val ? [val.tensors.x, val.tensors.y] : [])]);
      model.dispose();
    }
  },
});

function buildModel(tf: Tf, size: number, classCount: number, layers: LayerSpec[], seed: number): Tfjs.Sequential {
  const model = tf.sequential({ name: 'scratch' });
  model.add(tf.layers.inputLayer({ inputShape: [size, size, 3], name: 'images' }));
  let flattened = false;
  layers.forEach((spec, i) => {
    const initializer = tf.initializers.glorotUniform({ seed: seed + i });
    if ('conv' in spec) {
      model.add(tf.layers.conv2d({ filters: spec.conv, kernelSize: spec.kernel ?? 3, activation: (spec.activation ?? 'relu') as 'relu', padding: 'same', kernelInitializer: initializer, name: `conv_${i}` }));
    } else if ('max_pool' in spec) {
      model.add(tf.layers.maxPooling2d({ poolSize: spec.max_pool, name: `pool_${i}` }));
    } else if ('batch_norm' in spec) {
      model.add(tf.layers.batchNormalization({ name: `batch_norm_${i}` }));
    } else if ('dropout' in spec) {
      model.add(tf.layers.dropout({ rate: spec.dropout, seed: seed + i, name: `dropout_${i}` }));
    } else {
      if (!flattened) model.add(tf.layers.flatten({ name: `flatten_${i}` }));
      flattened = true;
      model.add(tf.layers.dense({ units: spec.dense, activation: (spec.activation ?? 'relu') as 'relu', kernelInitializer: initializer, name: `dense_${i}` }));
    }
  });
  if (!flattened) model.add(tf.layers.flatten({ name: 'flatten' }));
  model.add(tf.layers.dense({ units: classCount, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }), name: 'output' }));
  return model;
}

async function imageTensors(tf: Tf, dir: string, split: Split, preprocessing: Preprocessing, budget: number): Promise<{ tensors: TensorSplit; classes: string[] }> {
  const source = await openSplit(dir, split);
  checkMemory(tf, budget, tensorBytes([source.count, source.size, source.size, 3]) * 3, `the ${split} split's images`);
  const parts: Tfjs.Tensor[] = [];
  for await (const batch of source.batches(256)) {
    parts.push(tf.tidy(() => toModelInput(tf, tf.tensor4d(batch.images, [batch.count, source.size, source.size, 3], 'int32'), preprocessing)));
  }
  const x = tf.concat(parts);
  tf.dispose(parts);
  const labels = await source.readLabels();
  return { tensors: { x, y: oneHot(tf, labels, source.classes.length), count: labels.length }, classes: source.classes };
}
