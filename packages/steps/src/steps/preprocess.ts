import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { defineStep, sha256, StepUserError } from '@headstart/core';
import type { StepContext } from '@headstart/core';
import { augmentImage, drawAugmentation } from '../data/augment.js';
import type { AugmentSettings, Fit, ManifestEntry, Normalization, PackageDataset, PreprocessingInfo, Split } from '../data/dataset.js';
import { CLASSES_FILE, normalizationRange, PREPROCESSING_FILE, readDatasetManifest, readPreprocessing, SplitWriter, SPLITS } from '../data/dataset.js';
import { isColour, toRgb, UnreadableImageError } from '../data/image.js';
import { loadPackagePixels, PACKAGE_IMAGE_SIZE, pixelKey } from '../data/npm-datasets.js';
import { forEachBatch } from '../data/parallel.js';
import { seededRandom, shuffleInPlace } from '../data/random.js';
import type { SplitRatios } from '../data/split.js';
import { assignSplits } from '../data/split.js';

export interface PreprocessParams {
  size: number;
  fit: Fit;
  background: string;
  split: SplitRatios;
  keep_splits: boolean;
  val_from_train: number;
  normalization: Normalization;
  augment?: AugmentSettings;
  seed?: number;
}

const ratio = { type: 'number', minimum: 0, maximum: 1, default: 0 } as const;

export const preprocessParamsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    size: { type: 'integer', minimum: 8, maximum: 2048, default: 224, description: 'Images become size × size RGB.' },
    fit: {
      enum: ['fill', 'cover', 'contain'], default: 'fill',
      description: 'fill: stretch to the square (fine for square data such as 28×28 digits); cover: crop the centre; contain: pad with the background.',
    },
    background: { type: 'string', default: 'white', description: 'CSS colour transparent pixels are flattened onto (and `contain` pads with).' },
    split: {
      type: 'object', additionalProperties: false,
      properties: { train: ratio, val: ratio, test: ratio },
      default: { train: 0.8, val: 0.1, test: 0.1 },
      description: 'Ratios for samples without a predefined split, applied per class (stratified); they add up to 1.',
    },
    keep_splits: { type: 'boolean', default: true, description: 'Samples with a predefined split (train/ val/ test/ folders, a csv column) keep it.' },
    val_from_train: { type: 'number', minimum: 0, maximum: 0.9, default: 0, description: 'When the data has a predefined train split and no val split: the fraction of train (per class) moved to val.' },
    normalization: { enum: ['[-1,1]', '[0,1]', 'none'], default: '[0,1]', description: 'How consumers outside headstart should scale the pixels (recorded in preprocessing.json; images stay uint8). headstart\'s model steps scale them as their model records: [0,1] for the zoo\'s bases, which nsfwjs last trained on pixels / 255.' },
    augment: {
      type: 'object', additionalProperties: false,
      description: 'Extra randomly transformed copies of each training image (val and test are never augmented).',
      properties: {
        flip: { type: 'boolean', default: false, description: 'Mirror left–right half of the time.' },
        rotation: { type: 'number', minimum: 0, maximum: 180, default: 0, description: 'Degrees, either way.' },
        zoom: { type: 'number', minimum: 0, maximum: 0.9, default: 0, description: 'Zoom factor within [1 - zoom, 1 + zoom].' },
        brightness: { type: 'number', minimum: 0, maximum: 1, default: 0, description: 'Brightness factor within [1 - b, 1 + b].' },
        copies: { type: 'integer', minimum: 0, maximum: 50, default: 1, description: 'Augmented copies per training image.' },
      },
    },
    seed: { type: 'integer', description: 'Seed for splitting, ordering and augmentation; the pipeline\'s seed by default.' },
  },
} as const;

const BATCH = 64;

interface Job {
  ctx: StepContext<PreprocessParams>;
  seed: number;
  entries: readonly ManifestEntry[];
  packagePixels: ReadonlyMap<PackageDataset, ReadonlyMap<string, Uint8Array>>;
  augment: AugmentSettings | null;
  progress: { done: number; total: number };
}

export default defineStep<PreprocessParams>({
  name: 'preprocess',
  version: '1',
  description: 'Splits a dataset (stratified), resizes every image to size × size RGB, augments training images, and writes uint8 .npy tensors per split.',
  params: preprocessParamsSchema,
  inputs: ['dataset'],
  outputs: ['dataset'],
  /** The split sizes `run` returned, from the preprocessing.json it wrote. */
  async summarize(ctx) {
    return { metrics: splitCounts((await readPreprocessing(ctx.outputs['dataset']!)).splits) };
  },
  async run(ctx) {
    const { params } = ctx;
    if (!(await isColour(params.background))) throw new StepUserError(`background: "${params.background}" is not a colour`);
    const seed = params.seed ?? ctx.seed;
    const { classes, entries } = await readDatasetManifest(ctx.inputs.dataset!);
    const splits = assignSplits(entries, { ratios: params.split, keepSplits: params.keep_splits, valFromTrain: params.val_from_train, seed });
    warnUnusedValFromTrain(ctx, entries);
    warnUnusedRatios(ctx, entries);
    const augment = augmentSettings(ctx);
    const members = SPLITS.map((split) => [split, orderOf(split, splits, seed)] as const).filter(([, rows]) => rows.length > 0);
    const total = members.reduce((n, [split, rows]) => n + rows.length * (split === 'train' && augment ? 1 + augment.copies : 1), 0);
    const job: Job = { ctx, seed, entries, packagePixels: await loadPixels(ctx, entries), augment, progress: { done: 0, total } };
    const counts: Partial<Record<Split, number>> = {};
    for (const [split, rows] of members) counts[split] = await writeSplit(job, split, rows);
    const out = ctx.outputs.dataset!;
    await writeFile(join(out, CLASSES_FILE), `${JSON.stringify(classes, null, 2)}\n`);
    await writeFile(join(out, PREPROCESSING_FILE), `${JSON.stringify(preprocessingInfo(params, counts, augment, seed), null, 2)}\n`);
    ctx.log.info(`${SPLITS.map((s) => `${s} ${counts[s] ?? 0}`).join(', ')} images of ${params.size}×${params.size}`);
    return { metrics: splitCounts(counts) };
  },
});

function warnUnusedValFromTrain(ctx: StepContext<PreprocessParams>, entries: readonly ManifestEntry[]): void {
  if (ctx.params.val_from_train === 0) return;
  const has = (split: Split) => ctx.params.keep_splits && entries.some((e) => e.split === split);
  if (has('val')) ctx.log.warn('val_from_train is ignored: the data has its own val split');
  else if (!has('train')) ctx.log.warn('val_from_train is ignored: the data has no predefined train split (split ratios apply)');
}

/** Ratios the user wrote that no sample gets (every one keeps its predefined split) would otherwise vanish silently. */
function warnUnusedRatios(ctx: StepContext<PreprocessParams>, entries: readonly ManifestEntry[]): void {
  const { split: ratios, keep_splits: keepSplits, val_from_train: valFromTrain } = ctx.params;
  if (!keepSplits || entries.length === 0 || entries.some((e) => e.split === null)) return;
  if (SPLITS.every((s) => ratios[s] === preprocessParamsSchema.properties.split.default[s])) return;
  const predefined = SPLITS.filter((s) => entries.some((e) => e.split === s));
  const reason = `split is ignored: every sample has a predefined split (${predefined.join(', ')})`;
  if (predefined.includes('val') || valFromTrain > 0) ctx.log.warn(`${reason}; keep_splits: false splits them all by the ratios`);
  else ctx.log.warn(`${reason}; for a val split, set val_from_train (the fraction of train, per class, moved to val)`);
}

function augmentSettings(ctx: StepContext<PreprocessParams>): AugmentSettings | null {
  const augment = ctx.params.augment;
  if (!augment || augment.copies === 0) return null;
  if (!augment.flip && augment.rotation === 0 && augment.zoom === 0 && augment.brightness === 0) {
    ctx.log.warn('augment: every transform is off (flip, rotation, zoom, brightness), so the copies are duplicates');
  }
  return augment;
}

/** Rows of a split in output order: training rows shuffled by the seed (consumers taking a prefix get every class), others in manifest order. */
function orderOf(split: Split, splits: readonly Split[], seed: number): number[] {
  const rows = splits.flatMap((s, i) => (s === split ? [i] : []));
  return split === 'train' ? shuffleInPlace(rows, seededRandom(seed, 'order', split)) : rows;
}

async function loadPixels(ctx: StepContext<PreprocessParams>, entries: readonly ManifestEntry[]): Promise<Map<PackageDataset, Map<string, Uint8Array>>> {
  const bySource = new Map<PackageDataset, ManifestEntry[]>();
  for (const entry of entries) {
    if (!entry.source) continue;
    if (!bySource.has(entry.source)) bySource.set(entry.source, []);
    bySource.get(entry.source)!.push(entry);
  }
  const pixels = new Map<PackageDataset, Map<string, Uint8Array>>();
  for (const [source, wanted] of bySource) {
    ctx.signal.throwIfAborted();
    pixels.set(source, await loadPackagePixels(source, wanted as { label: number; index: number }[]));
  }
  return pixels;
}

/** A sample as written: its image and augmented copies, all with its label. */
interface DecodedRow {
  images: Uint8Array[];
  label: number;
}

async function writeSplit(job: Job, split: Split, rows: readonly number[]): Promise<number> {
  const { ctx, augment } = job;
  const writer = await SplitWriter.create(ctx.outputs.dataset!, split, ctx.params.size);
  try {
    await forEachBatch<number, DecodedRow>(rows, {
      batchSize: BATCH,
      signal: ctx.signal,
      onBatch: async (results) => {
        const images = results.flatMap((r) => r.images);
        await writer.append(concat(images), Int32Array.from(results.flatMap((r) => r.images.map(() => r.label))));
        job.progress.done += images.length;
        ctx.progress(job.progress.done, job.progress.total, 'images');
      },
    }, async (row) => {
      const rgb = await decodeEntry(job, job.entries[row]!);
      const copies = split === 'train' && augment ? await augmentCopies(job, rgb, row, augment) : [];
      return { images: [rgb, ...copies], label: job.entries[row]!.label };
    });
    return await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** Copies drawn from a generator seeded by the sample's manifest position, so they do not depend on batch timing. */
async function augmentCopies(job: Job, rgb: Uint8Array, row: number, augment: AugmentSettings): Promise<Uint8Array[]> {
  const random = seededRandom(job.seed, 'augment', row);
  const copies: Uint8Array[] = [];
  for (let k = 0; k < augment.copies; k++) copies.push(await augmentImage(rgb, job.ctx.params.size, drawAugmentation(augment, random)));
  return copies;
}

async function decodeEntry(job: Job, entry: ManifestEntry): Promise<Uint8Array> {
  const { size, fit, background } = job.ctx.params;
  const options = { size, fit, background };
  if (entry.source !== undefined) {
    const pixels = job.packagePixels.get(entry.source)?.get(pixelKey(entry.label, entry.index!));
    const name = `${entry.source} class ${entry.label} #${entry.index}`;
    if (!pixels) throw new StepUserError(`${name}: not a well-formed sample of the ${entry.source} package`);
    if (entry.hash && sha256(pixels) !== entry.hash) throw new StepUserError(`${name}: differs from the sample load-data listed (another ${entry.source} version?)`);
    return toRgb({ pixels, width: PACKAGE_IMAGE_SIZE, height: PACKAGE_IMAGE_SIZE }, options);
  }
  const path = entry.path!;
  const bytes = await readFile(resolve(job.ctx.workdir, path)).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? new StepUserError(`${path}: not found (load-data listed it)`) : error;
  });
  if (entry.hash && sha256(bytes) !== entry.hash) throw new StepUserError(`${path}: changed since load-data listed it; run the pipeline again`);
  try {
    return await toRgb(bytes, options);
  } catch (error) {
    if (error instanceof UnreadableImageError) throw new StepUserError(`${path}: ${error.message}`);
    throw error;
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function splitCounts(counts: Partial<Record<Split, number>>): Record<string, number> {
  return Object.fromEntries(SPLITS.map((s) => [`${s}_images`, counts[s] ?? 0]));
}

function preprocessingInfo(params: PreprocessParams, splits: Partial<Record<Split, number>>, augment: AugmentSettings | null, seed: number): PreprocessingInfo {
  return {
    size: params.size,
    channels: 3,
    dtype: 'uint8',
    layout: 'NHWC',
    normalization: params.normalization,
    range: normalizationRange(params.normalization),
    fit: params.fit,
    background: params.background,
    resize: 'lanczos3',
    splits,
    augment,
    seed,
  };
}
