import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError } from '@headstart/core';

/*
 * Learning-rate schedules, applied before every batch (training.ts). Pure functions of the batch's
 * position, except `plateau`, whose state (PlateauState) moves once per epoch.
 */

export type ScheduleType = 'constant' | 'cosine' | 'one_cycle' | 'step' | 'plateau';

export interface Schedule {
  type: ScheduleType;
  warmup_epochs: number;
  min_lr: number;
  pct_start: number;
  factor: number;
  patience: number;
  step_epochs: number;
}

export const CONSTANT: Schedule = { type: 'constant', warmup_epochs: 0, min_lr: 0, pct_start: 0.25, factor: 0.1, patience: 2, step_epochs: 3 };

/** The `schedule:` parameter of the training steps. */
export const SCHEDULE_PARAM = {
  type: 'object',
  additionalProperties: false,
  default: { type: 'constant' },
  description: 'the learning rate per batch: constant (lr throughout), cosine (lr down to min_lr over the batches after warmup), one_cycle (fastai: up from lr/25 to lr over pct_start of the batches, then down to min_lr, both halves cosine), step (× factor every step_epochs epochs), plateau (Keras ReduceLROnPlateau on the early-stopping monitor: × factor after `patience` epochs without improvement)',
  properties: {
    type: { enum: ['constant', 'cosine', 'one_cycle', 'step', 'plateau'], default: CONSTANT.type },
    warmup_epochs: { type: 'number', minimum: 0, default: CONSTANT.warmup_epochs, description: 'epochs (fractions allowed) over which the lr rises linearly, batch by batch, to the schedule\'s first value (one_cycle: lr/25; the others: lr); cosine and one_cycle need it below epochs' },
    min_lr: { type: 'number', minimum: 0, default: CONSTANT.min_lr, description: 'where cosine and one_cycle end; the floor of step and plateau' },
    pct_start: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: CONSTANT.pct_start, description: 'one_cycle: the share of the batches spent rising' },
    factor: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1, default: CONSTANT.factor, description: 'step and plateau: what each reduction multiplies the lr by' },
    patience: { type: 'integer', minimum: 1, default: CONSTANT.patience, description: 'plateau: epochs without improvement before a reduction' },
    step_epochs: { type: 'integer', minimum: 1, default: CONSTANT.step_epochs, description: 'step: epochs between reductions' },
  },
} as const;

/** Schedules that run over the batches after warmup, so need some. */
const AFTER_WARMUP: readonly ScheduleType[] = ['cosine', 'one_cycle'];

/** Refuses a schedule with no batches after warmup for a type that runs over them (its lr would be no number). */
export function checkSchedule(schedule: Partial<Schedule> | undefined, epochs: number): void {
  const s = { ...CONSTANT, ...schedule };
  if (AFTER_WARMUP.includes(s.type) && s.warmup_epochs >= epochs) {
    throw new StepUserError(`schedule: warmup_epochs (${s.warmup_epochs}) must be below epochs (${epochs}): ${s.type} runs over the batches after warmup`);
  }
}

/** A batch's place in training: `epoch` from 1, `batch` from 0 within it. */
export interface BatchPosition {
  epoch: number;
  batch: number;
  batchesPerEpoch: number;
  epochs: number;
}

/** one_cycle starts at lr / ONE_CYCLE_DIV (fastai's and PyTorch's div_factor). */
const ONE_CYCLE_DIV = 25;

/** Keras ReduceLROnPlateau's min_delta: a smaller gain is no improvement. */
const PLATEAU_MIN_DELTA = 1e-4;

/**
 * The learning rate of the batch at `at`, for a base `lr` (for plateau, the lr its state holds now).
 * Warmup batches ramp linearly to the schedule's first value; cosine and one_cycle run over the batches
 * after warmup, their last batch at min_lr (PyTorch OneCycleLR's endpoints).
 */
export function learningRateAt(lr: number, s: Schedule, at: BatchPosition): number {
  const step = (at.epoch - 1) * at.batchesPerEpoch + at.batch;
  const warmup = Math.round(s.warmup_epochs * at.batchesPerEpoch);
  const rest = at.epochs * at.batchesPerEpoch - warmup;
  const scheduled = afterWarmup(lr, s, Math.max(0, step - warmup), rest, at.epoch);
  return step < warmup ? (scheduled * (step + 1)) / warmup : scheduled;
}

/** Batch `i` of the `n` after warmup, in epoch `epoch`. */
function afterWarmup(lr: number, s: Schedule, i: number, n: number, epoch: number): number {
  if (n <= 1 && AFTER_WARMUP.includes(s.type)) return lr; // one batch (or none) after warmup: nothing to anneal over
  switch (s.type) {
    case 'constant':
    case 'plateau':
      return lr;
    case 'step':
      return Math.max(s.min_lr, lr * s.factor ** Math.floor((epoch - 1) / s.step_epochs));
    case 'cosine':
      return cosineBetween(lr, s.min_lr, i / (n - 1));
    case 'one_cycle':
      return oneCycle(lr, s, i, n);
  }
}

function oneCycle(lr: number, s: Schedule, i: number, n: number): number {
  const peak = s.pct_start * n - 1; // PyTorch: the batch at which the rise ends (may fall between two)
  if (i <= peak) return cosineBetween(lr / ONE_CYCLE_DIV, lr, peak > 0 ? i / peak : 1);
  return cosineBetween(lr, s.min_lr, (i - peak) / (n - 1 - peak));
}

/** From `start` (t = 0) to `end` (t = 1) along half a cosine. */
export function cosineBetween(start: number, end: number, t: number): number {
  return end + ((start - end) / 2) * (1 + Math.cos(Math.PI * t));
}

/** What plateau carries from epoch to epoch: the lr now, the best score seen, epochs since it. */
export interface PlateauState {
  lr: number;
  best: number;
  wait: number;
}

export function startPlateau(lr: number): PlateauState {
  return { lr, best: -Infinity, wait: 0 };
}

/** The state after an epoch that scored `score` (higher is better); unchanged unless the schedule is plateau. */
export function plateauAfterEpoch(state: PlateauState, score: number, s: Schedule): PlateauState {
  if (s.type !== 'plateau') return state;
  if (score > state.best + PLATEAU_MIN_DELTA) return { lr: state.lr, best: score, wait: 0 };
  if (state.wait + 1 < s.patience) return { ...state, wait: state.wait + 1 };
  return { lr: Math.max(s.min_lr, state.lr * s.factor), best: state.best, wait: 0 };
}

type Settable = { learningRate: number; setLearningRate?: (lr: number) => void };

/** The optimizer's learning rate now (adam, rmsprop and sgd/momentum all keep it as `learningRate`). */
export function learningRateOf(optimizer: Tfjs.Optimizer): number {
  return (optimizer as unknown as Settable).learningRate;
}

/** Sets the learning rate the optimizer's next step uses (SGD keeps it also as a tensor, which `setLearningRate` remakes). */
export function setLearningRate(optimizer: Tfjs.Optimizer, lr: number): void {
  const settable = optimizer as unknown as Settable;
  if (settable.learningRate === lr) return;
  if (typeof settable.setLearningRate === 'function') settable.setLearningRate(lr);
  else settable.learningRate = lr;
}
