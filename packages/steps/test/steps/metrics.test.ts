import { describe, expect, it } from 'vitest';
import { classificationReport, confusionTable, rocAuc } from '../../src/ml/metrics.js';

describe('classification metrics', () => {
  // 3 classes, 6 samples; rows are class probabilities.
  const labels = Int32Array.from([0, 0, 1, 1, 2, 2]);
  const probabilities = Float32Array.from([
    0.7, 0.2, 0.1, // 0 → 0 ✓
    0.3, 0.6, 0.1, // 0 → 1 ✗ (second choice 0)
    0.1, 0.8, 0.1, // 1 → 1 ✓
    0.1, 0.7, 0.2, // 1 → 1 ✓
    0.2, 0.3, 0.5, // 2 → 2 ✓
    0.5, 0.1, 0.4, // 2 → 0 ✗ (second choice 2)
  ]);
  const report = classificationReport(labels, probabilities, ['a', 'b', 'c'], 2);

  it('counts accuracy, top-k and the confusion matrix', () => {
    expect(report.accuracy).toBeCloseTo(4 / 6);
    expect(report.top_k_accuracy).toBe(1);
    expect(report.confusion).toEqual([[1, 1, 0], [0, 2, 0], [1, 0, 1]]);
  });

  it('computes per-class precision, recall and F1, and their macro averages', () => {
    const [a, b, c] = report.per_class;
    expect([a!.precision, a!.recall, a!.f1]).toEqual([0.5, 0.5, 0.5]);
    expect(b!.precision).toBeCloseTo(2 / 3);
    expect(b!.recall).toBe(1);
    expect(b!.f1).toBeCloseTo(0.8);
    expect([c!.precision, c!.recall]).toEqual([1, 0.5]);
    expect(report.macro_f1).toBeCloseTo((0.5 + 0.8 + 2 / 3) / 3);
  });

  it('ROC-AUC is the Mann–Whitney statistic, ties counting half', () => {
    expect(rocAuc(Float64Array.from([0.1, 0.4, 0.35, 0.8]), Uint8Array.from([0, 0, 1, 1]))).toBeCloseTo(0.75);
    expect(rocAuc(Float64Array.from([0.5, 0.5]), Uint8Array.from([0, 1]))).toBe(0.5);
    expect(rocAuc(Float64Array.from([0.2, 0.9]), Uint8Array.from([1, 1]))).toBeNull();
    // class a: positives score 0.7, 0.3; negatives 0.1, 0.1, 0.2, 0.5 → 7 of 8 pairs ordered right
    expect(report.per_class[0]!.roc_auc).toBeCloseTo(7 / 8);
  });

  it('prints the confusion matrix as an aligned table', () => {
    expect(confusionTable(report)).toEqual(['true \\ predicted  0 1 2', '0:a               1 1 0', '1:b               0 2 0', '2:c               1 0 1']);
  });
});
