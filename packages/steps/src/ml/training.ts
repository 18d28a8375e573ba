import type * as Tfjs from '@tensorflow/tfjs';
import { seededRandom, shuffleInPlace } from '../data/random.js';
import type { Tf } from '../runtime/backend.js';

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

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  val_loss?: number;
  val_accuracy?: number;
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
  /** One epoch over the training split's rows in `order`: the mean loss and the accuracy. */
  trainEpoch(order: Int32Array, signal: AbortSignal): Promise<{ loss: number; accuracy: number }>;
  /** Loss and accuracy on the validation split; undefined without one. */
  validate(): Promise<{ val_loss: number; val_accuracy: number } | undefined>;
  close(): Promise<void>;
}

export interface FitOptions {
  epochs: number;
  seed: number;
  earlyStopping: EarlyStopping | null;
  signal: AbortSignal;
  onEpoch(record: EpochRecord): void;
}

/**
 * Trains epoch by epoch with `trainer`, and closes it. The shuffle is ours (seeded), not tfjs's
 * (Math.random), so a run on the same backend is repeatable; with early stopping the best epoch's
 * weights are restored at the end.
 */
export async function fitWithEarlyStopping(model: Tfjs.LayersModel, trainer: EpochTrainer, options: FitOptions): Promise<History> {
  const epochs: EpochResult[] = [];
  const monitor = options.earlyStopping?.monitor ?? 'val_loss';
  let best: { epoch: number; score: number; weights: Tfjs.Tensor[] } | undefined;
  let stoppedEarly = false;
  try {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      options.signal.throwIfAborted();
      const record = await trainEpoch(trainer, epoch, options);
      epochs.push(withoutWallTime(record));
      options.onEpoch(record);
      const score = record.val_loss !== undefined ? (monitor === 'val_loss' ? -record.val_loss : record.val_accuracy!) : -record.loss;
      if (!best || score > best.score) {
        best?.weights.forEach((w) => w.dispose());
        best = { epoch, score, weights: options.earlyStopping ? model.getWeights().map((w) => w.clone()) : [] };
      } else if (options.earlyStopping && epoch - best.epoch >= options.earlyStopping.patience) {
        stoppedEarly = true;
        break;
      }
    }
    if (options.earlyStopping && best) model.setWeights(best.weights);
    return { epochs, best_epoch: options.earlyStopping ? best?.epoch ?? epochs.length : epochs.length, stopped_early: stoppedEarly };
  } finally {
    best?.weights.forEach((w) => w.dispose());
    await trainer.close();
  }
}

async function trainEpoch(trainer: EpochTrainer, epoch: number, options: FitOptions): Promise<EpochRecord> {
  const started = performance.now();
  const order = Int32Array.from(shuffleInPlace([...Array(trainer.trainCount).keys()], seededRandom(options.seed, 'epoch', epoch)));
  const trained = await trainer.trainEpoch(order, options.signal);
  const record: EpochRecord = { epoch, loss: trained.loss, accuracy: trained.accuracy, seconds: 0 };
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
    async trainEpoch(order) {
      const indices = tf.tensor1d(order, 'int32');
      const [x, y] = [tf.gather(train.x, indices), tf.gather(train.y, indices)];
      indices.dispose();
      try {
        const fitted = await model.fit(x, y, { epochs: 1, batchSize: o.batchSize, shuffle: false, verbose: 0, ...(o.classWeight ? { classWeight: o.classWeight } : {}) });
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
  return { best_epoch: history.best_epoch, train_accuracy: round(best.accuracy), ...(best.val_accuracy === undefined ? {} : { val_accuracy: round(best.val_accuracy) }) };
}
