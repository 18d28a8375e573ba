import { StepUserError } from '@headstart/core';
import type { Split } from './dataset.js';
import { SPLITS } from './dataset.js';
import { sampleInOrder, seededRandom, shuffleInPlace } from './random.js';

/** Stratified (per class) selection and splitting, deterministic for a seed. */

export interface Labelled {
  label: number;
  split: Split | null;
}

/**
 * At most `limit` items per class and predefined split, chosen by the seed and kept in their order.
 * A seeded permutation's prefix, so a larger limit keeps a smaller one's items.
 */
export function limitPerClass<T extends Labelled>(items: readonly T[], limit: number, seed: number, purpose = 'select'): T[] {
  const groups = new Map<string, number[]>();
  items.forEach((item, i) => {
    const key = `${item.label}/${item.split ?? 'none'}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(i);
  });
  const kept: number[] = [];
  for (const [key, members] of groups) kept.push(...sampleInOrder(members, limit, seededRandom(seed, purpose, key)));
  return kept.sort((a, b) => a - b).map((i) => items[i]!);
}

export type SplitRatios = Record<Split, number>;

export interface SplitOptions {
  ratios: SplitRatios;
  /** Samples with a predefined split keep it; the ratios apply to the others. */
  keepSplits: boolean;
  /** Fraction of the predefined train samples (per class) moved to val, when there is no predefined val. */
  valFromTrain: number;
  seed: number;
}

export function checkRatios(ratios: SplitRatios): void {
  const sum = SPLITS.reduce((total, split) => total + ratios[split], 0);
  if (SPLITS.some((split) => !(ratios[split] >= 0)) || Math.abs(sum - 1) > 1e-6) {
    throw new StepUserError(`split ratios must be ≥ 0 and add up to 1 (got ${SPLITS.map((s) => `${s} ${ratios[s]}`).join(', ')}: ${+sum.toFixed(6)})`);
  }
}

/** Each sample's split. Every class is split on its own, so each split keeps the class proportions. */
export function assignSplits(samples: readonly Labelled[], options: SplitOptions): Split[] {
  checkRatios(options.ratios);
  const predefined = samples.map((s) => (options.keepSplits ? s.split : null));
  const result: (Split | null)[] = [...predefined];
  const ratioParts = SPLITS.map((split) => [split, options.ratios[split]] as const);
  allocateByClass(samples, (i) => predefined[i] === null, ratioParts, options.seed, 'split', result);
  if (options.valFromTrain > 0 && !predefined.includes('val')) {
    const parts = [['train', 1 - options.valFromTrain], ['val', options.valFromTrain]] as const;
    allocateByClass(samples, (i) => predefined[i] === 'train', parts, options.seed, 'val-from-train', result);
  }
  return result as Split[];
}

/** Shuffles each class's selected samples with the seed and hands out consecutive runs by the parts' ratios. */
function allocateByClass(
  samples: readonly Labelled[],
  selected: (i: number) => boolean,
  parts: readonly (readonly [Split, number])[],
  seed: number,
  purpose: string,
  result: (Split | null)[],
): void {
  const byClass = new Map<number, number[]>();
  samples.forEach((sample, i) => {
    if (!selected(i)) return;
    if (!byClass.has(sample.label)) byClass.set(sample.label, []);
    byClass.get(sample.label)!.push(i);
  });
  for (const [label, members] of byClass) {
    shuffleInPlace(members, seededRandom(seed, purpose, label));
    const counts = largestRemainder(members.length, parts.map(([, ratio]) => ratio));
    let next = 0;
    parts.forEach(([split], p) => {
      for (let k = 0; k < counts[p]!; k++) result[members[next++]!] = split;
    });
  }
}

/** Splits `total` into integer counts proportional to `ratios` (which add up to 1), summing exactly to `total`. */
export function largestRemainder(total: number, ratios: readonly number[]): number[] {
  const exact = ratios.map((r) => r * total);
  const counts = exact.map((x) => Math.floor(x + 1e-9));
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - counts[i]!, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left <= 0) break;
    if (ratios[i]! > 0) {
      counts[i]!++;
      left--;
    }
  }
  return counts;
}
