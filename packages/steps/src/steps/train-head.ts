import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep } from '@headstart/core';
import type { Split } from '../data/dataset.js';
import { featureSplits, readBaseRecipe, readClasses, readFeatureSplit, type FeatureSplit } from '../ml/features.js';
import { saveGraphBasedArtifact, saveModelArtifact, type ModelMetadata } from '../ml/model-artifact.js';
import { LAYER_SCHEMAS, TRAINING_PARAMS, checkSchedule, classWeightsFor, compileForTraining, describeEpoch, fitEpochs, fitWithEarlyStopping, historyMetrics, oneHot, type History, type TensorSplit, type TrainingParams } from '../ml/training.js';
import { backendSetting, loadBackend, type Tf } from '../runtime/backend.js';
import { loadFrozenBase } from '../runtime/zoo.js';
import { metricsFromHistory } from '../ml/history-summary.js';
import { LR_INPUT, LR_SCALE_PARAM, withInputLearningRate, type LrParams } from '../ml/lr-input.js';

type HeadLayer = { dense: number; activation?: string } | { dropout: number } | { batch_norm: true };

interface Params extends TrainingParams, LrParams {
  layers: HeadLayer[];
  binary: boolean;
}

export default defineStep<Params>({
  name: 'train-head',
  version: '5',
  description: 'Trains a new classifier head on cached features; outputs the head, base + head, and the history',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      layers: {
        type: 'array',
        default: [{ dense: 128, activation: 'relu' }, { dropout: 0.2 }],
        description: 'hidden layers; the output layer is added from the class count',
        items: {
          oneOf: [LAYER_SCHEMAS.dense, LAYER_SCHEMAS.dropout, LAYER_SCHEMAS.batchNorm],
        },
      },
      binary: { type: 'boolean', default: false, description: 'two classes with one sigmoid output instead of softmax' },
      optimizer: TRAINING_PARAMS.optimizer,
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.001 },
      lr_scale: LR_SCALE_PARAM,
      momentum: TRAINING_PARAMS.momentum,
      epochs: { type: 'integer', minimum: 1, default: 20 },
      batch_size: TRAINING_PARAMS.batch_size,
      early_stopping: TRAINING_PARAMS.early_stopping,
      schedule: TRAINING_PARAMS.schedule,
      label_smoothing: TRAINING_PARAMS.label_smoothing,
      class_weight: TRAINING_PARAMS.class_weight,
    },
  },
  inputs: ['features'],
  ...LR_INPUT,
  outputs: ['model', 'head', 'history'],
  summarize: (ctx) => metricsFromHistory(ctx.outputs),
  async run(ctx) {
    checkSchedule(ctx.params.schedule, ctx.params.epochs);
    ctx = await withInputLearningRate(ctx);
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const featuresDir = ctx.inputs['features']!;
    const p = ctx.params;
    const { classes, splits, train } = await readHeadFeatures(featuresDir, p.binary);
    const val = splits.includes('val') ? await readFeatureSplit(featuresDir, 'val') : undefined;
    if (!val && p.early_stopping) ctx.log.warn('no val split: early stopping watches the training loss');

    const head = buildHead(tf, train.rowShape, classes.length, p, ctx.seed);
    compileForTraining(tf, head, p, p.binary);
    const [trainTensors, valTensors] = [toTensors(tf, train, classes.length, p.binary), val && toTensors(tf, val, classes.length, p.binary)];
    try {
      const classWeight = classWeightsFor(tf, p.class_weight, trainTensors.y, classes.length);
      const trainer = fitEpochs(tf, head, { train: trainTensors, val: valTensors }, { batchSize: p.batch_size, classWeight });
      const history = await fitWithEarlyStopping(head, trainer, {
        epochs: p.epochs,
        seed: ctx.seed,
        earlyStopping: p.early_stopping,
        schedule: p.schedule,
        signal: ctx.signal,
        snapshots: { tf, dir: ctx.snapshotDir, log: ctx.log },
        onEpoch: (r) => {
          ctx.progress(r.epoch, p.epochs, 'epochs');
          ctx.log.info(describeEpoch(r));
        },
      });
      await writeFile(join(ctx.outputs['history']!, 'history.json'), `${JSON.stringify({ phase: 'head', ...history }, null, 2)}\n`);
      await saveHeadAndFullModel(tf, head, featuresDir, ctx.outputs['head']!, ctx.outputs['model']!, { classes, binary: p.binary, history, cacheDir: ctx.cacheDir, workdir: ctx.workdir });
      return { info: { backend }, metrics: historyMetrics(history) };
    } finally {
      tf.dispose([trainTensors.x, trainTensors.y, ...(valTensors ? [valTensors.x, valTensors.y] : [])]);
      head.dispose();
    }
  },
});

export function buildHead(tf: Tf, inputShape: number[], classCount: number, p: Params, seed: number): Tfjs.Sequential {
  const head = tf.sequential({ name: 'head' });
  head.add(tf.layers.inputLayer({ inputShape, name: 'head_input' }));
  if (inputShape.length > 1) head.add(tf.layers.flatten({ name: 'head_flatten' }));
  p.layers.forEach((layer, i) => {
    if ('dense' in layer) {
      const activation = (layer.activation ?? 'relu') as 'relu';
      head.add(tf.layers.dense({ units: layer.dense, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }), name: `head_dense_${i}` }));
    } else if ('dropout' in layer) {
      head.add(tf.layers.dropout({ rate: layer.dropout, seed: seed + i, name: `head_dropout_${i}` }));
    } else {
      head.add(tf.layers.batchNormalization({ name: `head_batch_norm_${i}` }));
    }
  });
  const units = p.binary ? 1 : classCount;
  head.add(tf.layers.dense({ units, activation: p.binary ? 'sigmoid' : 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1000 }), name: 'head_output' }));
  return head;
}

/** The features' classes, split names and train split, refused where a head cannot be trained on them. */
export async function readHeadFeatures(featuresDir: string, binary: boolean): Promise<{ classes: string[]; splits: Split[]; train: FeatureSplit }> {
  const classes = await readClasses(featuresDir);
  if (binary && classes.length !== 2) throw new StepUserError(`binary: true needs exactly 2 classes, the data has ${classes.length}`);
  const splits = await featureSplits(featuresDir);
  if (!splits.includes('train')) throw new StepUserError('the features have no train split');
  return { classes, splits, train: await readFeatureSplit(featuresDir, 'train') };
}

/** A split's features and labels as tensors: one-hot labels, or one 0/1 column when `binary`. */
export function toTensors(tf: Tf, split: FeatureSplit, classCount: number, binary: boolean): TensorSplit {
  const x = tf.tensor(split.features, [split.count, ...split.rowShape]);
  const y = binary ? tf.tensor2d(Float32Array.from(split.labels), [split.count, 1]) : oneHot(tf, split.labels, classCount);
  return { x, y, count: split.count };
}

/**
 * Saves the head alone, then rebuilds the frozen base the features came from and saves base + head as
 * one model that takes images: the model later steps fine-tune, evaluate and export.
 */
async function saveHeadAndFullModel(tf: Tf, head: Tfjs.Sequential, featuresDir: string, headDir: string, modelDir: string, o: { classes: string[]; binary: boolean; history: History; cacheDir: string; workdir: string }): Promise<void> {
  const recipe = await readBaseRecipe(featuresDir);
  const headLayers = head.layers.map((layer) => layer.name);
  const metadata: ModelMetadata = { classes: o.classes, preprocessing: recipe.info.preprocessing, base: recipe, headLayers, binary: o.binary, history: [{ phase: 'head', ...o.history }] };
  await saveModelArtifact(head, headDir, metadata);
  const base = await loadFrozenBase(tf, recipe.ref, {
    cacheDir: o.cacheDir,
    baseDir: o.workdir,
    inputSize: recipe.inputSize,
    layer: recipe.info.layer,
    pooling: recipe.info.pooling,
    ...(recipe.sha256 ? { sha256: recipe.sha256 } : {}),
  });
  try {
    if (base.kind === 'graph') return await saveGraphBasedArtifact(head, modelDir, metadata, base); // a graph cannot join a layers model
    let output = base.model.outputs[0]!;
    for (const layer of head.layers.filter((l) => l.getClassName() !== 'InputLayer')) output = layer.apply(output) as Tfjs.SymbolicTensor;
    const full = tf.model({ inputs: base.model.inputs, outputs: output, name: 'base_and_head' });
    for (const layer of full.layers) layer.trainable = headLayers.includes(layer.name);
    await saveModelArtifact(full, modelDir, metadata);
  } finally {
    base.dispose();
  }
}
