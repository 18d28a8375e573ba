import type * as Tfjs from '@tensorflow/tfjs';
import { seededRandom, shuffleInPlace } from '../data/random.js';
import type { Tf } from '../runtime/backend.js';
import { classOfRows, smoothLabels } from './data-parallel/slices.js';
import { loadSnapshot, saveSnapshot, type SnapshotOptions } from './snapshot.js';
import { CONSTANT, SCHEDULE_PARAM, checkSchedule, learningRateAt, learningRateOf, plateauAfterEpoch, setLearningRate, startPlateau, type PlateauState, type Schedule } from './schedule.js';

export { checkSchedule, setLearningRate };

export type OptimizerName = 'adam' | 'sgd' | 'rmsprop';

export interface OptimizerParams {
  optimizer: OptimizerName;
  lr: number;
  /** SGD only. */
  momentum: number;
}

export interface EarlyStopping {
  patience: number;
  monitor: 'val_loss' | 'val_accuracy';
}

/** The parameters train-head and fine-tune share. */
export interface TrainingParams extends OptimizerParams {
  epochs: number;
  batch_size: number;
  early_stopping: EarlyStopping | null;
  schedule: Schedule;
  label_smoothing: number;
  class_weight: 'balanced' | null;
}

const ACTIVATION = { enum: ['relu', 'relu6', 'elu', 'selu', 'tanh', 'sigmoid', 'swish', 'linear'], default: 'relu' } as const;

/** Schemas of the layers both train-head's `layers:` and train's `layers:` accept. */
export const LAYER_SCHEMAS = {
  dense: { type: 'object', additionalProperties: false, required: ['dense'], properties: { dense: { type: 'integer', minimum: 1 }, activation: ACTIVATION } },
  conv: { type: 'object', additionalProperties: false, required: ['conv'], properties: { conv: { type: 'integer', minimum: 1 }, kernel: { type: 'integer', minimum: 1, default: 3 }, activation: ACTIVATION } },
  maxPool: { type: 'object', additionalProperties: false, required: ['max_pool'], properties: { max_pool: { type: 'integer', minimum: 2 } } },
  dropout: { type: 'object', additionalProperties: false, required: ['dropout'], properties: { dropout: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } } },
  batchNorm: { type: 'object', additionalProperties: false, required: ['batch_norm'], properties: { batch_norm: { const: true } } },
} as const;

/** Schema fragments shared by the training steps, so their parameters read the same. */
export const TRAINING_PARAMS = {
  optimizer: { enum: ['adam', 'sgd', 'rmsprop'], default: 'adam' },
  momentum: { type: 'number', minimum: 0, maximum: 1, default: 0.9, description: 'sgd only' },
  batch_size: { type: 'integer', minimum: 1, maximum: 4096, default: 32 },
  early_stopping: {
    oneOf: [
      { type: 'null' },
      {
        type: 'object',
        additionalProperties: false,
        properties: { patience: { type: 'integer', minimum: 1, default: 5 }, monitor: { enum: ['val_loss', 'val_accuracy'], default: 'val_loss' } },
      },
    ],
    default: { patience: 5, monitor: 'val_loss' },
    description: 'stop when the monitored validation metric stops improving and keep the best epoch\'s weights (null: train every epoch, keep the last)',
  },
  schedule: SCHEDULE_PARAM,
  class_weight: { enum: ['balanced', null], default: null, description: 'balanced: each row\'s training loss × n / (classes · rows of its class), Keras/scikit-learn\'s balanced weights' },
  label_smoothing: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, description: 'Keras label smoothing: targets become y·(1−ε) + ε/classes (binary: ε/2), in the training and validation loss' },
} as const;

export function makeOptimizer(tf: Tf, params: OptimizerParams): Tfjs.Optimizer {
  switch (params.optimizer) {
    case 'adam':
      return tf.train.adam(params.lr);
    case 'sgd':
      return tf.train.momentum(params.lr, params.momentum);
    case 'rmsprop':
      return tf.train.rmsprop(params.lr);
  }
}

/** Compiles `model` with the step's optimizer and loss (cross-entropy with its label smoothing) and accuracy. */
export function compileForTraining(tf: Tf, model: Tfjs.LayersModel, params: OptimizerParams & Pick<TrainingParams, 'label_smoothing'>, binary: boolean): void {
  model.compile({ optimizer: makeOptimizer(tf, params), loss: binary ? 'binaryCrossentropy' : 'categoricalCrossentropy', metrics: ['accuracy'] });
  smoothLabels(tf, model, params.label_smoothing);
}

/** The class weights `class_weight` asks for, from the training split's one-hot (or binary) `y`. */
export function classWeightsFor(tf: Tf, classWeight: 'balanced' | null, y: Tfjs.Tensor2D, classCount: number): Record<number, number> | undefined {
  return classWeight === 'balanced' ? balancedClassWeights(labelsOf(tf, y), classCount) : undefined;
}

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  val_loss?: number;
  val_accuracy?: number;
  /** The learning rate of the epoch's last batch (absent in histories from before schedules). */
  lr?: number;
  seconds: number;
}

/** An epoch as artifacts keep it: without its wall time, so that the same training writes the same bytes. */
export type EpochResult = Omit<EpochRecord, 'seconds'>;

function withoutWallTime(record: EpochRecord): EpochResult {
  const result: Partial<EpochRecord> = { ...record };
  delete result.seconds;
  return result as EpochResult;
}

export interface History {
  epochs: EpochResult[];
  /** The epoch whose weights were kept (1-based). */
  best_epoch: number;
  stopped_early: boolean;
  /** The base learning rate (the schedule's lr; absent in histories from before schedules). */
  lr?: number;
}

/** A split as tensors: x (any rank) and one-hot y. */
export interface TensorSplit {
  x: Tfjs.Tensor;
  y: Tfjs.Tensor2D;
  count: number;
}

/** Trains a model one epoch at a time on one training split (and validates on one); `fitWithEarlyStopping` drives it. */
export interface EpochTrainer {
  /** Rows of the training split. */
  readonly trainCount: number;
  readonly batchSize: number;
  /** One epoch over the training split's rows in `order`, `beforeBatch(i)` called before its i-th batch: the mean loss and the accuracy. */
  trainEpoch(order: Int32Array, signal: AbortSignal, beforeBatch: (batch: number) => void): Promise<{ loss: number; accuracy: number }>;
  /** Loss and accuracy on the validation split; undefined without one. */
  validate(): Promise<{ val_loss: number; val_accuracy: number } | undefined>;
  close(): Promise<void>;
}

export interface FitOptions {
  epochs: number;
  seed: number;
  earlyStopping: EarlyStopping | null;
  /** The lr per batch, from the optimizer's lr; absent: constant. */
  schedule?: Schedule | undefined;
  signal: AbortSignal;
  onEpoch(record: EpochRecord): void;
  /** Where to keep a snapshot after each epoch, and to resume from (the stage's ctx.snapshotDir); absent: no snapshots. */
  snapshots?: SnapshotOptions | undefined;
}

/**
 * Everything the training loop carries from one epoch to the next, kept in each epoch's snapshot (as
 * JSON, so plain values only): a schedule with state of its own keeps it here, as plateau does. The
 * shuffle (seeded per epoch) and seeded Dropout (its mask a function of its seed alone) carry nothing.
 */
interface LoopState {
  /** Epochs done. */
  epoch: number;
  epochs: EpochResult[];
  /** The best epoch so far and its score (higher is better). */
  best?: { epoch: number; score: number } | undefined;
  stoppedEarly: boolean;
  plateau: PlateauState;
}

/**
 * Trains epoch by epoch with `trainer`, and closes it. The shuffle is ours (seeded), not tfjs's
 * (Math.random), so a run on the same backend is repeatable; with early stopping the best epoch's
 * weights are restored at the end. With `options.snapshots` it keeps a snapshot after each epoch and
 * starts from the newest intact one it finds: a killed run resumes and ends with the same bits.
 */
export async function fitWithEarlyStopping(model: Tfjs.LayersModel, trainer: EpochTrainer, options: FitOptions): Promise<History> {
  const monitor = options.earlyStopping?.monitor ?? 'val_loss';
  const lr = learningRateOf(model.optimizer);
  let state: LoopState = { epoch: 0, epochs: [], stoppedEarly: false, plateau: startPlateau(lr) };
  let bestWeights: Tfjs.Tensor[] = [];
  try {
    const resumed = options.snapshots && (await resumeTraining(model, options, options.snapshots));
    if (resumed) ({ state, bestWeights } = resumed);
    while (!state.stoppedEarly && state.epoch < options.epochs) {
      options.signal.throwIfAborted();
      const epoch = state.epoch + 1;
      const record = await trainEpoch(trainer, epoch, options, scheduledRates(model.optimizer, trainer, epoch, options, state.plateau));
      options.onEpoch(record);
      const score = record.val_loss !== undefined ? (monitor === 'val_loss' ? -record.val_loss : record.val_accuracy!) : -record.loss;
      const improved = !state.best || score > state.best.score;
      if (improved && options.earlyStopping) {
        bestWeights.forEach((w) => w.dispose());
        bestWeights = model.getWeights().map((w) => w.clone());
      }
      const best = improved ? { epoch, score } : state.best!;
      const patience = options.earlyStopping?.patience;
      const epochs = [...state.epochs, withoutWallTime(record)];
      const stoppedEarly = patience !== undefined && epoch - best.epoch >= patience;
      const plateau = plateauAfterEpoch(state.plateau, score, scheduleOf(options));
      state = { epoch, epochs, best, stoppedEarly, plateau };
      if (options.snapshots) await saveSnapshot(options.snapshots, epoch, model, state, best.epoch === epoch || bestWeights.length === 0 ? undefined : bestWeights);
    }
    if (options.earlyStopping && state.best) model.setWeights(bestWeights);
    return { epochs: state.epochs, best_epoch: options.earlyStopping ? state.best?.epoch ?? state.epochs.length : state.epochs.length, stopped_early: state.stoppedEarly, lr };
  } finally {
    bestWeights.forEach((w) => w.dispose());
    await trainer.close();
  }
}

/** The loop's state from the newest intact snapshot, its weights and optimizer restored into `model`; undefined when there is none. */
async function resumeTraining(model: Tfjs.LayersModel, options: FitOptions, snapshots: SnapshotOptions): Promise<{ state: LoopState; bestWeights: Tfjs.Tensor[] } | undefined> {
  const resumed = await loadSnapshot<LoopState>(snapshots, model);
  if (!resumed) return undefined;
  const { state } = resumed;
  // Without a separate copy, the best epoch is the snapshot's own.
  const bestWeights = resumed.bestWeights ?? (options.earlyStopping && state.best ? model.getWeights().map((w) => w.clone()) : []);
  const finished = state.stoppedEarly || state.epoch >= options.epochs;
  snapshots.log.info(finished ? `resuming after epoch ${state.epoch} of ${options.epochs}: its training had finished` : `resuming at epoch ${state.epoch + 1} of ${options.epochs}`);
  return { state, bestWeights };
}

/** The schedule with the parameters left out at their defaults. */
function scheduleOf(options: FitOptions): Schedule {
  return { ...CONSTANT, ...options.schedule };
}

/** Sets the optimizer's lr before each batch of epoch `epoch`, as the schedule says; `last()`: the lr of the last batch. */
function scheduledRates(optimizer: Tfjs.Optimizer, trainer: EpochTrainer, epoch: number, options: FitOptions, plateau: PlateauState): { beforeBatch(batch: number): void; last(): number } {
  const at = { epoch, batchesPerEpoch: Math.ceil(trainer.trainCount / trainer.batchSize), epochs: options.epochs };
  let last = plateau.lr;
  return {
    beforeBatch(batch) {
      last = learningRateAt(plateau.lr, scheduleOf(options), { ...at, batch });
      setLearningRate(optimizer, last);
    },
    last: () => last,
  };
}

async function trainEpoch(trainer: EpochTrainer, epoch: number, options: FitOptions, rates: ReturnType<typeof scheduledRates>): Promise<EpochRecord> {
  const started = performance.now();
  const order = Int32Array.from(shuffleInPlace([...Array(trainer.trainCount).keys()], seededRandom(options.seed, 'epoch', epoch)));
  const trained = await trainer.trainEpoch(order, options.signal, rates.beforeBatch);
  const record: EpochRecord = { epoch, loss: trained.loss, accuracy: trained.accuracy, lr: rates.last(), seconds: 0 };
  const validation = await trainer.validate();
  if (validation) Object.assign(record, validation);
  record.seconds = Math.round(performance.now() - started) / 1000;
  return record;
}

/** Epochs as tfjs's `fit` trains them, on this thread. */
export function fitEpochs(tf: Tf, model: Tfjs.LayersModel, splits: { train: TensorSplit; val?: TensorSplit | undefined }, o: { batchSize: number; classWeight?: Record<number, number> | undefined }): EpochTrainer {
  const { train, val } = splits;
  return {
    trainCount: train.count,
    batchSize: o.batchSize,
    async trainEpoch(order, _signal, beforeBatch) {
      const indices = tf.tensor1d(order, 'int32');
      const [x, y] = [tf.gather(train.x, indices), tf.gather(train.y, indices)];
      indices.dispose();
      try {
        const callbacks = { onBatchBegin: async (batch: number) => beforeBatch(batch) };
        const fitted = await model.fit(x, y, { epochs: 1, batchSize: o.batchSize, shuffle: false, verbose: 0, callbacks, yieldEvery: 'never', ...(o.classWeight ? { classWeight: o.classWeight } : {}) });
        return { loss: lastValue(fitted.history['loss']), accuracy: lastValue(fitted.history['acc'] ?? fitted.history['accuracy']) };
      } finally {
        tf.dispose([x, y]);
      }
    },
    validate: async () => (val ? evaluateLossAndAccuracy(tf, model, val, o.batchSize) : undefined),
    close: async () => {},
  };
}

function evaluateLossAndAccuracy(tf: Tf, model: Tfjs.LayersModel, split: TensorSplit, batchSize: number): { val_loss: number; val_accuracy: number } {
  const results = model.evaluate(split.x, split.y, { batchSize }) as Tfjs.Scalar[];
  const [loss, accuracy] = results.map((r) => r.dataSync()[0]!);
  tf.dispose(results);
  return { val_loss: loss!, val_accuracy: accuracy! };
}

function lastValue(values: (number | Tfjs.Tensor)[] | undefined): number {
  const value = values?.[values.length - 1];
  return typeof value === 'number' ? value : value ? value.dataSync()[0]! : NaN;
}

/** Keras's `class_weight='balanced'`: n_samples / (n_classes · count of the class). */
export function balancedClassWeights(labels: Int32Array, classCount: number): Record<number, number> {
  const counts = new Array<number>(classCount).fill(0);
  for (const label of labels) counts[label]!++;
  return Object.fromEntries(counts.map((count, label) => [label, count === 0 ? 0 : labels.length / (classCount * count)]));
}

/** The class of each row of one-hot `y` (binary: its 0/1 column). */
export function labelsOf(tf: Tf, y: Tfjs.Tensor2D): Int32Array {
  return tf.tidy(() => classOfRows(tf, y).dataSync() as Int32Array);
}

export function oneHot(tf: Tf, labels: Int32Array, classCount: number): Tfjs.Tensor2D {
  return tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), classCount).toFloat() as Tfjs.Tensor2D);
}

/** One log line per epoch. */
export function describeEpoch(r: EpochRecord): string {
  const validation = r.val_loss === undefined ? '' : ` val_loss ${r.val_loss.toFixed(4)} val_acc ${r.val_accuracy!.toFixed(4)}`;
  return `epoch ${r.epoch}: loss ${r.loss.toFixed(4)} acc ${r.accuracy.toFixed(4)}${validation} (${r.seconds}s)`;
}

/** The kept epoch's numbers, as the stage's metrics. */
export function historyMetrics(history: History): Record<string, number> {
  const best = history.epochs[history.best_epoch - 1]!;
  const round = (value: number) => Math.round(value * 10000) / 10000;
  return { best_epoch: history.best_epoch, train_accuracy: round(best.accuracy), ...(best.val_accuracy === undefined ? {} : { val_accuracy: round(best.val_accuracy) }), ...(history.lr === undefined ? {} : { lr: history.lr }) };
}
