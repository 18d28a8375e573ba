import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError, defineStep } from '@headstart/core';
import { loadModelArtifact, saveModelArtifact, withPhase } from '../ml/model-artifact.js';
import { computeLayers, firstTrainableIndex, splitAtFirstTrainable } from '../ml/model-graph.js';
import { startEpochTrainer } from '../ml/data-parallel/epochs.js';
import { loadTrainingData } from '../ml/training-data.js';
import { LAYER_RATE_PARAMS, describeRates, layerRates, variableMultipliers, type LayerRateParams } from '../ml/layer-rates.js';
import { TRAINING_PARAMS, checkSchedule, classWeightsFor, compileForTraining, describeEpoch, fitWithEarlyStopping, historyMetrics, type TrainingParams } from '../ml/training.js';
import { setLearningRateMultipliers } from '../runtime/fused-adam.js';
import { backendSetting, loadBackend } from '../runtime/backend.js';
import { freezeBatchNorm } from '../runtime/batch-norm.js';
import { defaultMemoryBudget } from '../runtime/memory.js';
import { metricsFromHistory } from '../ml/history-summary.js';
import { LR_INPUT, LR_SCALE_PARAM, withInputLearningRate, type LrParams } from '../ml/lr-input.js';

interface Params extends TrainingParams, LrParams, LayerRateParams {
  cache_boundary: boolean;
}

export default defineStep<Params>({
  name: 'fine-tune',
  version: '6',
  description: 'Trains the unfrozen layers at a low learning rate, keeping the best validation epoch',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      optimizer: TRAINING_PARAMS.optimizer,
      lr: { type: 'number', exclusiveMinimum: 0, default: 0.0001, description: '1e-4 suits the top blocks; Keras uses 1e-5 when the whole base is unfrozen' },
      lr_scale: LR_SCALE_PARAM,
      momentum: TRAINING_PARAMS.momentum,
      epochs: { type: 'integer', minimum: 1, default: 5 },
      batch_size: TRAINING_PARAMS.batch_size,
      early_stopping: { ...TRAINING_PARAMS.early_stopping, default: { patience: 3, monitor: 'val_accuracy' } },
      schedule: TRAINING_PARAMS.schedule,
      layer_decay: LAYER_RATE_PARAMS.layer_decay,
      lr_mult: LAYER_RATE_PARAMS.lr_mult,
      label_smoothing: TRAINING_PARAMS.label_smoothing,
      class_weight: TRAINING_PARAMS.class_weight,
      cache_boundary: { type: 'boolean', default: true, description: 'run the frozen lower part once and train only the upper part on its activations' },
    },
  },
  inputs: ['model', 'dataset'],
  ...LR_INPUT,
  outputs: ['model', 'history'],
  summarize: (ctx) => metricsFromHistory(ctx.outputs),
  async run(ctx) {
    checkSchedule(ctx.params.schedule, ctx.params.epochs);
    ctx = await withInputLearningRate(ctx);
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const { model, metadata } = await loadModelArtifact(tf, ctx.inputs['model']!);
    try {
      if (firstTrainableIndex(model) < 0) throw new StepUserError('nothing in the model is trainable: put an unfreeze stage before fine-tune');
      freezeBatchNorm(model, 'always');
      const split = ctx.params.cache_boundary ? splitAtFirstTrainable(tf, model) : undefined;
      if (ctx.params.cache_boundary && !split) ctx.log.warn('no single tensor separates the frozen part from the trainable one: training the whole model on images');
      const trained = split?.upper ?? model;
      const rates = layerRates(trained, ctx.params, metadata.headLayers);
      const budget = defaultMemoryBudget(backend);
      const started = performance.now();
      const data = await loadTrainingData({ tf, datasetDir: ctx.inputs['dataset']!, modelDir: ctx.inputs['model']!, metadata, lower: split?.lower, backend, budget, requestedThreads: ctx.settings.threads, signal: ctx.signal });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (split) ctx.log.info(`cached the frozen part's output below ${computeLayers(model)[firstTrainableIndex(model)]!.name} (${split.boundaryShape.join('×')}) for ${data.train.count + (data.val?.count ?? 0)} images in ${seconds} s (${data.threads} thread${data.threads > 1 ? 's' : ''}); training ${trained.layers.length - 1} layers`);
      try {
        compileForTraining(tf, trained, ctx.params, metadata.binary);
        if (rates) {
          setLearningRateMultipliers(tf, trained.optimizer, variableMultipliers(rates));
          ctx.log.info(describeRates(rates));
        }
        const classWeight = classWeightsFor(tf, ctx.params.class_weight, data.train.y, metadata.binary ? 2 : metadata.classes.length);
        const trainer = await startEpochTrainer(tf, trained, data, { batchSize: ctx.params.batch_size, classWeight, requestedThreads: ctx.settings.threads, log: (line) => ctx.log.info(line) });
        const history = await fitWithEarlyStopping(trained, trainer, {
          epochs: ctx.params.epochs,
          seed: ctx.seed,
          earlyStopping: data.val ? ctx.params.early_stopping : null,
          schedule: ctx.params.schedule,
          signal: ctx.signal,
          snapshots: { tf, dir: ctx.snapshotDir, log: ctx.log },
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
