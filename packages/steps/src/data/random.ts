import { createHash } from 'node:crypto';

/** A function returning uniform numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: a tiny 32-bit seeded generator; plenty for shuffles and augmentation draws. */
export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A generator for one purpose (a class's shuffle, one image's augmentation), derived from the seed and
 * a path of names, so draws for one purpose do not depend on how many were made for another.
 */
export function seededRandom(seed: number, ...path: readonly (string | number)[]): Random {
  const digest = createHash('sha256').update(JSON.stringify([seed, ...path])).digest();
  return mulberry32(digest.readUInt32LE(0));
}

/** Fisher–Yates, in place; returns the same array. */
export function shuffleInPlace<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** `count` items chosen without replacement, in their original order. */
export function sampleInOrder<T>(items: readonly T[], count: number, random: Random): T[] {
  if (count >= items.length) return [...items];
  const positions = shuffleInPlace(items.map((_, i) => i), random).slice(0, count).sort((a, b) => a - b);
  return positions.map((i) => items[i]!);
}

export function uniform(random: Random, low: number, high: number): number {
  return low + (high - low) * random();
}
