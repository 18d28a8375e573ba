/**
 * The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; fastai's `lr_find`): train
 * for a few batches with the learning rate growing exponentially, smooth the losses, stop when they
 * blow up, and read a learning rate off the curve. Pure arithmetic on numbers; lr-find.ts trains.
 */

import { StepUserError } from '@headstart/core';

export type Suggestion = 'valley' | 'steep' | 'minimum';

export const SUGGESTIONS: readonly Suggestion[] = ['valley', 'steep', 'minimum'];

/** fastai's `AvgSmoothLoss` weight of the running average. */
export const SMOOTHING_BETA = 0.98;

/** fastai stops the test once the smoothed loss exceeds this many times its minimum so far. */
export const DIVERGENCE_FACTOR = 4;

export interface CurvePoint {
  lr: number;
  loss: number;
  smoothed: number;
}

/** `iterations` learning rates from `startLr` to `endLr` (both included), each a constant factor above the last. */
export function lrSchedule(startLr: number, endLr: number, iterations: number): number[] {
  if (iterations === 1) return [startLr];
  const ratio = endLr / startLr;
  return Array.from({ length: iterations }, (_, i) => startLr * ratio ** (i / (iterations - 1)));
}

/**
 * Records batch losses as the test runs: each with its exponential moving average, bias-corrected
 * as fastai's `AvgSmoothLoss` does (so the first points are not pulled towards 0), and whether the
 * test should stop there because the loss diverged.
 */
export class SmoothedLoss {
  readonly points: CurvePoint[] = [];
  private average = 0;
  private best = Infinity;

  constructor(private readonly beta = SMOOTHING_BETA) {}

  /** Adds the loss of the batch trained at `lr`; true when the test should stop (the smoothed loss diverged or is no number). */
  add(lr: number, loss: number): boolean {
    this.average = this.beta * this.average + (1 - this.beta) * loss;
    const smoothed = this.average / (1 - this.beta ** (this.points.length + 1));
    this.points.push({ lr, loss, smoothed });
    if (smoothed < this.best) this.best = smoothed;
    return !Number.isFinite(smoothed) || smoothed > DIVERGENCE_FACTOR * this.best;
  }
}

/**
 * The suggested learning rate and the index (in `points`) of the point it was read from. As fastai
 * does, the first tenth of the planned `iterations` and the last 5 points are left out (the start
 * is noise, the end is the blow-up), unless that leaves fewer than 2 points.
 */
export function suggestLr(points: readonly CurvePoint[], iterations: number, suggest: Suggestion): { lr: number; index: number } {
  const first = Math.floor(iterations / 10);
  const trimmed = points.length - 5 - first >= 2 ? { from: first, to: points.length - 5 } : { from: 0, to: points.length };
  const usable = points.slice(trimmed.from, trimmed.to).filter((p) => Number.isFinite(p.smoothed));
  if (usable.length === 0) throw new StepUserError('the loss was no finite number at any learning rate tried: lower start_lr');
  const lrs = usable.map((p) => p.lr);
  const losses = usable.map((p) => p.smoothed);
  const at = (i: number) => ({ lr: lrs[i]!, index: points.indexOf(usable[i]!) });
  switch (suggest) {
    case 'valley':
      return at(valleyIndex(losses));
    case 'steep':
      return at(steepestIndex(lrs, losses));
    case 'minimum': {
      const i = argmin(losses);
      return { lr: lrs[i]! / 10, index: at(i).index };
    }
  }
}

/**
 * fastai's `valley`: the longest decreasing run of the loss (a longest decreasing subsequence), and
 * the point about halfway down it (a third of its length plus a sixth), where the loss still falls
 * well before the bottom.
 */
export function valleyIndex(losses: readonly number[]): number {
  const n = losses.length;
  const lengths = new Array<number>(n).fill(1);
  let [start, end] = [0, 0];
  for (let i = 1; i < n; i++) {
    for (let j = 0; j < i; j++) {
      if (losses[i]! < losses[j]! && lengths[i]! < lengths[j]! + 1) lengths[i] = lengths[j]! + 1;
      if (lengths[end]! < lengths[i]!) {
        end = i;
        start = end - lengths[end]!;
      }
    }
  }
  const section = (end - start) / 3;
  // fastai's start can be −1 (a valley from the first point), which Python reads as the last point
  return Math.max(0, start + Math.trunc(section) + Math.trunc(section / 2));
}

/** fastai's `steep`: where the loss falls fastest per unit of log(lr). */
export function steepestIndex(lrs: readonly number[], losses: readonly number[]): number {
  if (losses.length < 2) return 0;
  const slopes = losses.slice(1).map((loss, i) => (loss - losses[i]!) / (Math.log(lrs[i + 1]!) - Math.log(lrs[i]!)));
  return argmin(slopes);
}

function argmin(values: readonly number[]): number {
  let best = 0;
  values.forEach((value, i) => {
    if (value < values[best]!) best = i;
  });
  return best;
}

/** A number with `digits` significant digits, so lr.json and the metrics read like 0.00158, not 0.0015848931924611134. */
export function significant(value: number, digits = 6): number {
  return Number.isFinite(value) && value !== 0 ? Number(value.toPrecision(digits)) : value;
}
