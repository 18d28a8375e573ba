import { describe, expect, it } from 'vitest';
import { StepUserError } from '@headstart/core';
import { SmoothedLoss, lrSchedule, steepestIndex, suggestLr, valleyIndex, type CurvePoint } from '../../src/ml/lr-range-test.js';

/** A curve as the test records it, from a loss function of log10(lr), without smoothing. */
function curve(loss: (log10Lr: number) => number, iterations = 100): CurvePoint[] {
  return lrSchedule(1e-7, 10, iterations).map((lr) => ({ lr, loss: loss(Math.log10(lr)), smoothed: loss(Math.log10(lr)) }));
}

/** Flat at 2.3 (with a wiggle) below 1e-4, falling linearly in log(lr) to 0.5 at 1e-1, then blowing up. */
const flatFallBlowUp = (x: number) => (x < -4 ? 2.3 + 0.01 * Math.sin(7 * x) : x < -1 ? 2.3 - 1.8 * ((x + 4) / 3) : 0.5 + 3 * (x + 1) ** 2);

describe('the learning-rate schedule', () => {
  it('runs from start_lr to end_lr, each lr a constant factor above the last', () => {
    const lrs = lrSchedule(1e-7, 10, 100);
    expect(lrs).toHaveLength(100);
    expect(lrs[0]).toBe(1e-7);
    expect(lrs[99]).toBeCloseTo(10, 10);
    const ratios = lrs.slice(1).map((lr, i) => lr / lrs[i]!);
    for (const ratio of ratios) expect(ratio).toBeCloseTo(10 ** (8 / 99), 12);
  });
});

describe('the smoothed loss', () => {
  it('is bias-corrected as fastai\'s AvgSmoothLoss: the first point is the loss itself, a constant loss stays constant', () => {
    const recorder = new SmoothedLoss();
    for (let i = 0; i < 20; i++) recorder.add(1e-3, 1.5);
    expect(recorder.points[0]!.smoothed).toBeCloseTo(1.5, 12);
    for (const point of recorder.points) expect(point.smoothed).toBeCloseTo(1.5, 10);
  });

  it('is the exponential moving average with beta 0.98 divided by 1 − 0.98^n', () => {
    const recorder = new SmoothedLoss();
    recorder.add(1e-3, 1);
    recorder.add(1e-3, 3);
    const average = 0.98 * (0.02 * 1) + 0.02 * 3;
    expect(recorder.points[1]!.smoothed).toBeCloseTo(average / (1 - 0.98 ** 2), 12);
  });

  it('says stop once the smoothed loss exceeds 4 times its minimum, and not before', () => {
    const recorder = new SmoothedLoss(0); // no smoothing: the loss itself
    expect(recorder.add(1e-5, 1)).toBe(false);
    expect(recorder.add(1e-4, 0.5)).toBe(false);
    expect(recorder.add(1e-3, 2)).toBe(false);
    expect(recorder.add(1e-2, 2.01)).toBe(true);
  });

  it('says stop when the loss is no number', () => {
    const recorder = new SmoothedLoss();
    expect(recorder.add(1e-5, 1)).toBe(false);
    expect(recorder.add(1e-4, NaN)).toBe(true);
  });
});

describe('the suggestions', () => {
  it('valley: fastai\'s index on small curves (checked against fastai\'s Python)', () => {
    expect(valleyIndex([3, 3, 2, 9, 1, 0.5, 0.4, 7])).toBe(2);
    expect(valleyIndex([5, 4, 3, 2, 1, 6])).toBe(0);
    expect(valleyIndex([2, 1])).toBe(0); // fastai's index −1 here, read by Python as the last point
  });

  it('valley: halfway down the descent of a flat-fall-blow-up curve (1.59e-3, as fastai gives)', () => {
    const suggestion = suggestLr(curve(flatFallBlowUp), 100, 'valley');
    expect(suggestion.index).toBe(52); // fastai: 42 in the curve with its first 10 and last 5 points cut
    expect(suggestion.lr).toBeCloseTo(0.0015922827933410938, 15);
  });

  it('steep: where the loss falls fastest per log(lr)', () => {
    const sigmoidDrop = (x: number) => (x < 0 ? 2.3 - 1.8 / (1 + Math.exp(-3 * (x + 2.5))) : 10);
    const points = curve(sigmoidDrop);
    const suggestion = suggestLr(points, 100, 'steep');
    expect(Math.abs(Math.log10(suggestion.lr) + 2.5)).toBeLessThan(8 / 99); // within one step of the schedule
    expect(steepestIndex([1, 10, 100], [2, 1.9, 0.5])).toBe(1);
  });

  it('minimum: a tenth of the lr at the lowest smoothed loss', () => {
    const points = curve(flatFallBlowUp);
    const suggestion = suggestLr(points, 100, 'minimum');
    const lowest = points.reduce((best, point) => (point.smoothed < best.smoothed ? point : best));
    expect(lowest.lr).toBeCloseTo(0.1, 1);
    expect(suggestion.lr).toBe(lowest.lr / 10);
  });

  it('leaves out the first tenth of the planned iterations and the last 5 points', () => {
    const points = curve(flatFallBlowUp);
    points[3]!.smoothed = -100; // a fluke in the first tenth
    points[97]!.smoothed = -100; // and in the last 5
    expect(suggestLr(points, 100, 'minimum').index).not.toBe(3);
    expect(suggestLr(points, 100, 'minimum').index).not.toBe(97);
  });

  it('reads a curve cut short by divergence, and one too short to trim', () => {
    const cut = curve(flatFallBlowUp).slice(0, 70);
    expect(suggestLr(cut, 100, 'valley').lr).toBeGreaterThan(1e-4);
    expect(suggestLr(cut, 100, 'valley').lr).toBeLessThan(1e-1);
    const short = curve(flatFallBlowUp, 100).slice(60, 64);
    expect(suggestLr(short, 100, 'minimum').index).toBeLessThan(4);
  });
});

describe('suggestLr without a finite loss', () => {
  it('is the user\'s to fix (a start_lr too high), in one line', () => {
    const diverged: CurvePoint[] = [{ lr: 1, loss: Number.NaN, smoothed: Number.NaN }];
    let error: unknown;
    try {
      suggestLr(diverged, 100, 'valley');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(StepUserError);
    expect((error as Error).message).toBe('the loss was no finite number at any learning rate tried: lower start_lr');
  });
});
