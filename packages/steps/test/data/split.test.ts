import { describe, expect, it } from 'vitest';
import type { Split } from '../../src/data/dataset.js';
import { assignSplits, largestRemainder, limitPerClass } from '../../src/data/split.js';
import type { Labelled } from '../../src/data/split.js';

const RATIOS = { train: 0.8, val: 0.1, test: 0.1 };

/** 50 samples of class 0, 30 of class 1, 7 of class 2, without a predefined split. */
const samples: Labelled[] = [
  ...Array.from({ length: 50 }, () => ({ label: 0, split: null })),
  ...Array.from({ length: 30 }, () => ({ label: 1, split: null })),
  ...Array.from({ length: 7 }, () => ({ label: 2, split: null })),
];

function counts(splits: readonly Split[], label: number): Record<Split, number> {
  const result = { train: 0, val: 0, test: 0 };
  splits.forEach((split, i) => {
    if (samples[i]!.label === label) result[split]++;
  });
  return result;
}

describe('assignSplits', () => {
  it('splits every class by the ratios (stratified)', () => {
    const splits = assignSplits(samples, { ratios: RATIOS, keepSplits: true, valFromTrain: 0, seed: 1 });
    expect(counts(splits, 0)).toEqual({ train: 40, val: 5, test: 5 });
    expect(counts(splits, 1)).toEqual({ train: 24, val: 3, test: 3 });
    expect(counts(splits, 2)).toEqual({ train: 5, val: 1, test: 1 });
  });

  it('is deterministic for a seed and differs for another', () => {
    const options = { ratios: RATIOS, keepSplits: true, valFromTrain: 0 };
    const a = assignSplits(samples, { ...options, seed: 1 });
    expect(assignSplits(samples, { ...options, seed: 1 })).toEqual(a);
    const b = assignSplits(samples, { ...options, seed: 2 });
    expect(b).not.toEqual(a);
    expect(counts(b, 0)).toEqual(counts(a, 0));
  });

  it('keeps predefined splits unless told not to, and carves val out of a predefined train', () => {
    const predefined: Labelled[] = [
      ...Array.from({ length: 20 }, (_, i) => ({ label: i % 2, split: 'train' as const })),
      ...Array.from({ length: 4 }, (_, i) => ({ label: i % 2, split: 'test' as const })),
    ];
    const kept = assignSplits(predefined, { ratios: RATIOS, keepSplits: true, valFromTrain: 0, seed: 1 });
    expect(kept).toEqual(predefined.map((s) => s.split));
    const carved = assignSplits(predefined, { ratios: RATIOS, keepSplits: true, valFromTrain: 0.2, seed: 1 });
    expect(carved.slice(20)).toEqual(['test', 'test', 'test', 'test']);
    expect(carved.filter((s, i) => s === 'val' && predefined[i]!.label === 0)).toHaveLength(2);
    expect(carved.filter((s, i) => s === 'val' && predefined[i]!.label === 1)).toHaveLength(2);
    const resplit = assignSplits(predefined, { ratios: { train: 0.5, val: 0, test: 0.5 }, keepSplits: false, valFromTrain: 0, seed: 1 });
    expect(resplit.filter((s) => s === 'test')).toHaveLength(12);
  });

  it('ignores val_from_train when the data has its own val split', () => {
    const data: Labelled[] = [{ label: 0, split: 'train' }, { label: 0, split: 'train' }, { label: 0, split: 'val' }, { label: 1, split: 'train' }];
    expect(assignSplits(data, { ratios: RATIOS, keepSplits: true, valFromTrain: 0.5, seed: 1 })).toEqual(['train', 'train', 'val', 'train']);
  });

  it('rejects ratios that do not add up to 1', () => {
    expect(() => assignSplits(samples, { ratios: { train: 0.7, val: 0.1, test: 0.1 }, keepSplits: true, valFromTrain: 0, seed: 1 })).toThrow(/add up to 1/);
  });
});

describe('largestRemainder', () => {
  it('hands out exactly the total, in proportion', () => {
    expect(largestRemainder(10, [0.8, 0.1, 0.1])).toEqual([8, 1, 1]);
    expect(largestRemainder(7, [0.8, 0.1, 0.1])).toEqual([5, 1, 1]);
    expect(largestRemainder(9, [0.8, 0.1, 0.1])).toEqual([7, 1, 1]);
    expect(largestRemainder(3, [0.5, 0, 0.5])).toEqual([2, 0, 1]);
    expect(largestRemainder(0, [0.8, 0.1, 0.1])).toEqual([0, 0, 0]);
  });
});

describe('limitPerClass', () => {
  const items = Array.from({ length: 40 }, (_, i) => ({ id: i, label: i % 2, split: i < 20 ? ('train' as const) : null }));

  it('keeps at most N per class and split, in order, and a larger N keeps the smaller one\'s choice', () => {
    const three = limitPerClass(items, 3, 9);
    expect(three).toHaveLength(12);
    expect(three.map((i) => i.id)).toEqual([...three.map((i) => i.id)].sort((a, b) => a - b));
    const five = limitPerClass(items, 5, 9);
    expect(three.every((item) => five.includes(item))).toBe(true);
    expect(limitPerClass(items, 3, 10).map((i) => i.id)).not.toEqual(three.map((i) => i.id));
  });
});
