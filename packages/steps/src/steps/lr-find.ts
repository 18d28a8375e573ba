import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, defineStep, type StepContext } from '@headstart/core';
import { seededRandom, shuffleInPlace } from '../data/random.js';
import { startSlicedTrainer } from '../ml/data-parallel/epochs.js';
import { planTraining } from '../ml/data-parallel/plan.js';
import { SUGGESTIONS, SmoothedLoss, lrSchedule, significant, suggestLr, type CurvePoint, type Suggestion } from '../ml/lr-range-test.js';
import { LR_FILE } from '../ml/lr-input.js';
import { loadModelArtifact } from '../ml/model-artifact.js';
import { firstTrainableIndex, splitAtFirstTrainable } from '../ml/model-graph.js';
import { loadTrainingData } from '../ml/training-data.js';
import { TRAINING_PARAMS, compileForTraining, setLearningRate, type OptimizerName, type TensorSplit } from '../ml/training.js';
import { lrFinderSpec } from '../report/lr-chart.js';
import { renderChart } from '../report/render-chart.js';
import { backendSetting, loadBackend, type BackendName, type Tf } from '../runtime/backend.js';
import { freezeBatchNorm } from '../runtime/batch-norm.js';
import { defaultMemoryBudget } from '../runtime/memory.js';
import trainHead, { buildHead, readHeadFeatures, toTensors } from './train-head.js';

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

/** What the `lr` output's lr.json holds: the suggestion alone, so that the same suggestion keeps its consumers cached. */
export interface LrFile {
  lr: number;
}

/** What the `curve` output's curve.json holds: how the suggestion was found. */
export interface CurveFile {
  suggest: Suggestion;
  start_lr: number;
  end_lr: number;
  iterations: number;
  /** Batches trained: fewer than `iterations` when the loss diverged. */
  batches: number;
  curve: CurvePoint[];
}

/** The file of the `curve` output beside its plot lr.svg. */
export const CURVE_FILE = 'curve.json';

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
  // lr: lr.json, the suggestion alone (what training stages wire); curve: curve.json and lr.svg, the test itself
  outputs: ['lr', 'curve'],
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
      compileForTraining(tf, probe.model, { optimizer: p.optimizer, lr: p.start_lr, momentum: p.momentum, label_smoothing: 0 }, probe.binary);
      const curve = await rangeTest(tf, probe.model, probe.train, ctx);
      const lr = significant(suggestLr(curve, p.iterations, p.suggest).lr, 3);
      ctx.log.info(`suggested lr ${lr} (${p.suggest}), from ${curve.length} batches`);
      await writeJson(join(ctx.outputs['lr']!, LR_FILE), { lr } satisfies LrFile);
      const file: CurveFile = { suggest: p.suggest, start_lr: p.start_lr, end_lr: p.end_lr, iterations: p.iterations, batches: curve.length, curve: curve.map(roundPoint) };
      await writeCurveOutput(ctx.outputs['curve']!, file, lr);
      return { info: { backend }, metrics: { suggested_lr: lr } };
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
    const data = await loadTrainingData({ tf, datasetDir, modelDir, metadata, lower: split?.lower, backend, budget: defaultMemoryBudget(backend), requestedThreads: ctx.settings.threads, signal: ctx.signal, trainOnly: true });
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
  const { classes, train } = await readHeadFeatures(featuresDir, p.binary);
  const head = buildHead(tf, train.rowShape, classes.length, { layers: p.layers, binary: p.binary } as Parameters<typeof buildHead>[3], ctx.seed);
  const tensors = toTensors(tf, train, classes.length, p.binary);
  return {
    model: head,
    train: tensors,
    binary: p.binary,
    dispose: () => {
      tf.dispose([tensors.x, tensors.y]);
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
  const trainer = await startSlicedTrainer(tf, model, { train }, { threads: plan.threads, batchSize, log: (line) => ctx.log.info(line) });
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

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** curve.json and its plot, lr.svg, with the suggested `lr` marked. */
async function writeCurveOutput(dir: string, file: CurveFile, lr: number): Promise<void> {
  await writeJson(join(dir, CURVE_FILE), file);
  const chart = await renderChart('lr', lrFinderSpec(file.curve, { lr, label: `${file.suggest} ${lr}` }));
  await writeFile(join(dir, 'lr.svg'), chart.svg);
}

async function readLrFile(dir: string): Promise<LrFile> {
  return JSON.parse(await readFile(join(dir, LR_FILE), 'utf8')) as LrFile;
}
