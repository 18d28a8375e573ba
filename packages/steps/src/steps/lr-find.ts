import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep, type StepContext } from '@headstart/core';
import { seededRandom, shuffleInPlace } from '../data/random.js';
import { featureSplits, readClasses, readFeatureSplit } from '../ml/features.js';
import { planTraining } from '../ml/data-parallel/plan.js';
import { DataParallelTrainer } from '../ml/data-parallel/trainer.js';
import { SUGGESTIONS, SmoothedLoss, lrSchedule, significant, suggestLr, type CurvePoint, type Suggestion } from '../ml/lr-range-test.js';
import { LR_FILE } from '../ml/lr-input.js';
import { loadModelArtifact } from '../ml/model-artifact.js';
import { firstTrainableIndex, splitAtFirstTrainable } from '../ml/model-graph.js';
import { loadTrainingData } from '../ml/training-data.js';
import { TRAINING_PARAMS, makeOptimizer, oneHot, setLearningRate, type OptimizerName, type TensorSplit } from '../ml/training.js';
import { lrFinderSpec } from '../report/lr-chart.js';
import { renderChart } from '../report/render-chart.js';
import { backendSetting, loadBackend, type BackendName, type Tf } from '../runtime/backend.js';
import { freezeBatchNorm } from '../runtime/batch-norm.js';
import { defaultMemoryBudget } from '../runtime/memory.js';
import trainHead, { buildHead } from './train-head.js';

interface Params {
  start_lr: number;
  end_lr: number;
  iterations: number;
  suggest: Suggestion;
  batch_size: number;
  optimizer: OptimizerName;
  momentum: number;
  cache_boundary: boolean;
  layers: Parameters<typeof buildHead>[3]['layers'];
  binary: boolean;
}

/** What the `lr` output's lr.json holds; readers use only `lr`. */
export interface LrFile {
  lr: number;
  suggest: Suggestion;
  start_lr: number;
  end_lr: number;
  iterations: number;
  /** Batches trained: fewer than `iterations` when the loss diverged. */
  batches: number;
  curve: CurvePoint[];
}

/** train-head's own schema of `layers`, so the head probed here is the head train-head builds. */
const HEAD_LAYERS = (trainHead.params as { properties: Record<string, object> }).properties['layers']!;

/** What the test trains: a model's trainable part on its rows, and how the loss is computed. */
interface Probe {
  model: Tfjs.LayersModel;
  train: TensorSplit;
  binary: boolean;
  dispose(): void;
}

export default defineStep<Params>({
  name: 'lr-find',
  version: '1',
  description: 'The learning-rate range test (fastai\'s lr_find): trains a copy of the model with a growing learning rate and suggests one; the model is not changed',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      start_lr: { type: 'number', exclusiveMinimum: 0, default: 1e-7, description: 'the learning rate of the first batch' },
      end_lr: { type: 'number', exclusiveMinimum: 0, default: 10, description: 'the learning rate of the last batch; it grows by a constant factor from batch to batch' },
      iterations: { type: 'integer', minimum: 2, maximum: 10000, default: 100, description: 'batches to train (fewer when the smoothed loss exceeds 4 times its minimum)' },
      suggest: { enum: SUGGESTIONS, default: 'valley', description: 'valley: halfway down the longest descent of the loss (fastai\'s default); steep: where the loss falls fastest; minimum: a tenth of the lr at the lowest loss' },
      batch_size: TRAINING_PARAMS.batch_size,
      optimizer: { ...TRAINING_PARAMS.optimizer, description: 'the optimizer the training stage will use: the suggestion holds for it' },
      momentum: TRAINING_PARAMS.momentum,
      cache_boundary: { type: 'boolean', default: true, description: 'with model and dataset: run the frozen lower part once and train only the upper part on its activations (as fine-tune does)' },
      layers: { ...HEAD_LAYERS, description: 'with features: the head\'s hidden layers, as train-head takes them (its seed is the pipeline\'s, as in train-head)' },
      binary: { type: 'boolean', default: false, description: 'with features: two classes with one sigmoid output instead of softmax, as train-head takes it' },
    },
  },
  // either model + dataset (a model with trainable layers, as fine-tune takes them) or features (for a head, as train-head takes them)
  inputs: [],
  optionalInputs: ['model', 'dataset', 'features'],
  outputs: ['lr'],
  summarize: async (ctx) => ({ metrics: { suggested_lr: (await readLrFile(ctx.outputs['lr']!)).lr } }),
  async run(ctx) {
    const p = ctx.params;
    if (p.end_lr <= p.start_lr) throw new StepUserError(`end_lr (${p.end_lr}) must be above start_lr (${p.start_lr})`);
    const { model, dataset, features } = ctx.inputs;
    if (features === undefined ? model === undefined || dataset === undefined : model !== undefined || dataset !== undefined) {
      throw new StepUserError('lr-find takes either inputs model and dataset (a model with trainable layers) or input features (to probe a new head)');
    }
    const { tf, backend } = await loadBackend(backendSetting(ctx.settings.backend), { log: (line) => ctx.log.info(line) });
    const probe = features === undefined ? await modelProbe(tf, backend, model!, dataset!, ctx) : await headProbe(tf, features, ctx);
    try {
      probe.model.compile({ optimizer: makeOptimizer(tf, { optimizer: p.optimizer, lr: p.start_lr, momentum: p.momentum }), loss: probe.binary ? 'binaryCrossentropy' : 'categoricalCrossentropy', metrics: ['accuracy'] });
      const curve = await rangeTest(tf, probe.model, probe.train, ctx);
      const suggestion = suggestLr(curve, p.iterations, p.suggest);
      const file: LrFile = { lr: significant(suggestion.lr, 3), suggest: p.suggest, start_lr: p.start_lr, end_lr: p.end_lr, iterations: p.iterations, batches: curve.length, curve: curve.map(roundPoint) };
      ctx.log.info(`suggested lr ${file.lr} (${p.suggest}), from ${curve.length} batches`);
      await writeLrOutput(ctx.outputs['lr']!, file);
      return { info: { backend }, metrics: { suggested_lr: file.lr } };
    } finally {
      probe.dispose();
    }
  },
});

/**
 * The model's trainable part and its training rows: from the cached boundary when the model splits
 * there, as fine-tune trains it. The model is loaded for this test only: its input artifact is never written.
 */
async function modelProbe(tf: Tf, backend: BackendName, modelDir: string, datasetDir: string, ctx: StepContext<Params>): Promise<Probe> {
  const { model, metadata } = await loadModelArtifact(tf, modelDir);
  try {
    if (firstTrainableIndex(model) < 0) throw new StepUserError('nothing in the model is trainable: put an unfreeze stage before lr-find');
    freezeBatchNorm(model, 'always');
    const split = ctx.params.cache_boundary ? splitAtFirstTrainable(tf, model) : undefined;
    if (ctx.params.cache_boundary && !split) ctx.log.warn('no single tensor separates the frozen part from the trainable one: training the whole model on images');
    const data = await loadTrainingData({ tf, datasetDir, modelDir, metadata, lower: split?.lower, backend, budget: defaultMemoryBudget(backend), requestedThreads: ctx.settings.threads, signal: ctx.signal });
    if (data.val) tf.dispose([data.val.x, data.val.y]);
    return {
      model: split?.upper ?? model,
      train: data.train,
      binary: metadata.binary,
      dispose: () => {
        tf.dispose([data.train.x, data.train.y]);
        model.dispose();
      },
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** A new head, initialised as train-head initialises it, and the features' training rows. */
async function headProbe(tf: Tf, featuresDir: string, ctx: StepContext<Params>): Promise<Probe> {
  const p = ctx.params;
  const classes = await readClasses(featuresDir);
  if (p.binary && classes.length !== 2) throw new StepUserError(`binary: true needs exactly 2 classes, the data has ${classes.length}`);
  if (!(await featureSplits(featuresDir)).includes('train')) throw new StepUserError('the features have no train split');
  const split = await readFeatureSplit(featuresDir, 'train');
  const head = buildHead(tf, split.rowShape, classes.length, { layers: p.layers, binary: p.binary } as Parameters<typeof buildHead>[3], ctx.seed);
  const x = tf.tensor(split.features, [split.count, ...split.rowShape]);
  const y = p.binary ? tf.tensor2d(Float32Array.from(split.labels), [split.count, 1]) : oneHot(tf, split.labels, classes.length);
  return {
    model: head,
    train: { x, y, count: split.count },
    binary: p.binary,
    dispose: () => {
      tf.dispose([x, y]);
      head.dispose();
    },
  };
}

/**
 * Trains `model` one batch per learning rate of the schedule, batches drawn from a seeded shuffle of
 * the training rows (a new one each pass), and returns the curve, cut where the loss diverged.
 */
async function rangeTest(tf: Tf, model: Tfjs.LayersModel, train: TensorSplit, ctx: StepContext<Params>): Promise<CurvePoint[]> {
  const p = ctx.params;
  if (train.count === 0) throw new StepUserError('the training split is empty');
  const batchSize = Math.min(p.batch_size, train.count);
  const lrs = lrSchedule(p.start_lr, p.end_lr, p.iterations);
  const batches = batchOrder(train.count, batchSize, ctx.seed);
  const trainer = await batchTrainer(tf, model, train, batchSize, ctx);
  const recorder = new SmoothedLoss();
  try {
    for (const [i, lr] of lrs.entries()) {
      ctx.signal.throwIfAborted();
      setLearningRate(model.optimizer, lr);
      const loss = await trainer.trainBatch(batches(i));
      ctx.progress(i + 1, lrs.length, 'batches');
      if (recorder.add(lr, loss)) {
        ctx.log.info(`stopped after ${i + 1} of ${lrs.length} batches: the smoothed loss diverged at lr ${significant(lr, 3)}`);
        break;
      }
    }
    return recorder.points;
  } finally {
    await trainer.close();
  }
}

/**
 * The rows of batch `i`: full batches only (the last partial one of each pass is dropped, as fastai's
 * training loader does), passes reshuffled with a seed of their own.
 */
function batchOrder(count: number, batchSize: number, seed: number): (i: number) => Int32Array {
  const perPass = Math.floor(count / batchSize);
  const passes = new Map<number, Int32Array>();
  return (i) => {
    const pass = Math.floor(i / perPass);
    let order = passes.get(pass);
    if (!order) {
      order = Int32Array.from(shuffleInPlace([...Array(count).keys()], seededRandom(seed, 'lr-find', pass)));
      passes.set(pass, order);
    }
    const start = (i % perPass) * batchSize;
    return order.subarray(start, start + batchSize);
  };
}

interface BatchTrainer {
  /** One optimizer step on the training rows `rows`; the batch's mean loss before the step. */
  trainBatch(rows: Int32Array): Promise<number>;
  close(): Promise<void>;
}

/** The sliced trainer (the same bits on any number of threads) where `planTraining` allows it, tfjs's `trainOnBatch` otherwise. */
async function batchTrainer(tf: Tf, model: Tfjs.LayersModel, train: TensorSplit, batchSize: number, ctx: StepContext<Params>): Promise<BatchTrainer> {
  // the rows the test trains, not the split's: a small split trained for many batches is worth the threads
  const plan = planTraining(tf, model, { samples: ctx.params.iterations * batchSize, batchSize, requestedThreads: ctx.settings.threads });
  if (plan.oneThreadBecause) ctx.log.info(`training on one thread: ${plan.oneThreadBecause}`);
  if (!plan.sliced) return onThisThread(tf, model, train);
  let trainer: DataParallelTrainer;
  try {
    trainer = await DataParallelTrainer.start(tf, model, { train }, plan.threads, batchSize);
  } catch (error) {
    ctx.log.info(`training on one thread: the training threads could not start (${(error instanceof Error ? error.message : String(error)).split('\n')[0]})`);
    trainer = await DataParallelTrainer.start(tf, model, { train }, 1, batchSize);
  }
  if (trainer.threads > 1) ctx.log.info(`training on ${trainer.threads} threads, each batch shared between them`);
  return { trainBatch: async (rows) => (await trainer.trainBatch(rows)).loss, close: () => trainer.close() };
}

function onThisThread(tf: Tf, model: Tfjs.LayersModel, train: TensorSplit): BatchTrainer {
  return {
    async trainBatch(rows) {
      const indices = tf.tensor1d(rows, 'int32');
      const [x, y] = [tf.gather(train.x, indices), tf.gather(train.y, indices)];
      try {
        const result = await model.trainOnBatch(x, y);
        return Array.isArray(result) ? result[0]! : result;
      } finally {
        tf.dispose([indices, x, y]);
      }
    },
    close: async () => {},
  };
}

function roundPoint(point: CurvePoint): CurvePoint {
  return { lr: significant(point.lr), loss: significant(point.loss), smoothed: significant(point.smoothed) };
}

async function writeLrOutput(dir: string, file: LrFile): Promise<void> {
  await writeFile(join(dir, LR_FILE), `${JSON.stringify(file, null, 2)}\n`);
  const chart = await renderChart('lr', lrFinderSpec(file.curve, { lr: file.lr, label: `${file.suggest} ${file.lr}` }));
  await writeFile(join(dir, 'lr.svg'), chart.svg);
}

async function readLrFile(dir: string): Promise<LrFile> {
  return JSON.parse(await readFile(join(dir, LR_FILE), 'utf8')) as LrFile;
}
