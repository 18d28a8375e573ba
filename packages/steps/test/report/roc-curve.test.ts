import { describe, expect, it } from 'vitest';
import { rocAuc } from '../../src/ml/metrics.js';
import { areaUnder, rocCurve } from '../../src/ml/roc-curve.js';

describe('ROC curve points', () => {
  it('steps through each distinct score, ties as one point, from (0, 0) to (1, 1)', () => {
    const scores = Float64Array.from([0.9, 0.8, 0.8, 0.4, 0.2]);
    const positives = Uint8Array.from([1, 1, 0, 0, 1]);
    expect(rocCurve(scores, positives)).toEqual([
      { fpr: 0, tpr: 0, threshold: Infinity },
      { fpr: 0, tpr: 1 / 3, threshold: 0.9 },
      { fpr: 0.5, tpr: 2 / 3, threshold: 0.8 },
      { fpr: 1, tpr: 2 / 3, threshold: 0.4 },
      { fpr: 1, tpr: 1, threshold: 0.2 },
    ]);
  });

  it('drops the points inside a straight run', () => {
    const scores = Float64Array.from([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]);
    const positives = Uint8Array.from([1, 1, 1, 0, 0, 0]);
    expect(rocCurve(scores, positives)!.map(({ fpr, tpr }) => [fpr, tpr])).toEqual([[0, 0], [0, 1], [1, 1]]);
  });

  it('has the area the Mann–Whitney AUC gives, ties included', () => {
    let state = 7;
    const random = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const scores = Float64Array.from({ length: 300 }, () => Math.round(random() * 40) / 40);
    const positives = Uint8Array.from(scores, (s) => (random() < 0.3 + 0.4 * s ? 1 : 0));
    const curve = rocCurve(scores, positives)!;
    expect(areaUnder(curve)).toBeCloseTo(rocAuc(scores, positives)!, 12);
    expect(areaUnder(curve)).toBeGreaterThan(0.55);
  });

  it('is null without positives or without negatives', () => {
    expect(rocCurve(Float64Array.from([0.1, 0.2]), Uint8Array.from([0, 0]))).toBeNull();
    expect(rocCurve(Float64Array.from([0.1, 0.2]), Uint8Array.from([1, 1]))).toBeNull();
  });
});
