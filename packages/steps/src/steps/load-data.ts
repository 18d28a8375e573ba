import { relative, resolve, sep } from 'node:path';
import { defineStep, StepUserError } from '@headstart/core';
import type { StepContext } from '@headstart/core';
import { csvDependencies, readCsvDataset } from '../data/csv-manifest.js';
import type { DatasetManifest, ManifestEntry, PackageDataset } from '../data/dataset.js';
import { PACKAGE_DATASETS, readDatasetManifest, writeDatasetManifest } from '../data/dataset.js';
import { checkImageFile, UnreadableImageError } from '../data/image.js';
import type { FoundImage, FoundImages } from '../data/image-folder.js';
import { scanImageFolder } from '../data/image-folder.js';
import { describeMalformed, PACKAGE_CLASSES, selectPackageSamples } from '../data/npm-datasets.js';
import { forEachBatch } from '../data/parallel.js';
import { limitPerClass } from '../data/split.js';

export interface LoadDataParams {
  source: 'image-folder' | 'csv' | PackageDataset;
  path?: string;
  path_column: string;
  label_column: string;
  split_column?: string;
  limit_per_class?: number;
  on_bad_image: 'error' | 'skip';
  deps: string[];
  seed?: number;
}

export const loadDataParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['source'],
  properties: {
    source: { enum: ['image-folder', 'csv', ...PACKAGE_DATASETS], description: 'image-folder (one subfolder per class), csv (a list of images and labels), or an npm dataset package.' },
    path: { type: 'string', minLength: 1, description: 'image-folder: the folder; csv: the CSV file. Relative to the pipeline file.' },
    path_column: { type: 'string', default: 'path', description: 'csv: the column of image paths (relative to the CSV\'s folder).' },
    label_column: { type: 'string', default: 'label', description: 'csv: the column of class names.' },
    split_column: { type: 'string', description: 'csv: a column of train / val / test (or empty).' },
    limit_per_class: { type: 'integer', minimum: 1, description: 'At most this many samples per class and predefined split, chosen by the seed.' },
    on_bad_image: { enum: ['error', 'skip'], default: 'error', description: 'A corrupt or unreadable image fails the stage, or is skipped with a warning.' },
    deps: { type: 'array', items: { type: 'string' }, default: [], description: 'More files or folders whose content is part of the key (a csv\'s images outside its folder).' },
    seed: { type: 'integer', description: 'Seed for limit_per_class; the pipeline\'s seed by default.' },
  },
  allOf: [{ if: { properties: { source: { enum: ['image-folder', 'csv'] } } }, then: { required: ['path'] } }],
} as const;

const BATCH = 64;
const BAD_IMAGES_SHOWN = 3;

export default defineStep<LoadDataParams>({
  name: 'load-data',
  version: '1',
  description: 'Lists a dataset (an image folder, a CSV, or an npm dataset package) as a manifest of samples, labels and predefined splits.',
  params: loadDataParamsSchema,
  outputs: ['dataset'],
  deps: (params) => [...sourceDependencies(params), ...params.deps],
  async run(ctx) {
    const seed = ctx.params.seed ?? ctx.seed;
    const manifest = isPackage(ctx.params.source)
      ? await loadPackage(ctx, ctx.params.source, seed)
      : await loadFiles(ctx, seed);
    await writeDatasetManifest(ctx.outputs.dataset!, manifest);
    const perSplit = countSplits(manifest.entries);
    ctx.log.info(`${manifest.entries.length} samples, ${manifest.classes.length} classes${perSplit}`);
    return { metrics: manifestMetrics(manifest) };
  },
  /** The counts `run` returned, from the manifest it wrote. */
  async summarize(ctx) {
    return { metrics: manifestMetrics(await readDatasetManifest(ctx.outputs['dataset']!)) };
  },
});

function manifestMetrics(manifest: DatasetManifest): Record<string, number> {
  return { samples: manifest.entries.length, classes: manifest.classes.length };
}

function sourceDependencies(params: LoadDataParams): string[] {
  if (params.source === 'image-folder') return [params.path!];
  if (params.source === 'csv') return csvDependencies(params.path!);
  return [];
}

function isPackage(source: LoadDataParams['source']): source is PackageDataset {
  return (PACKAGE_DATASETS as readonly string[]).includes(source);
}

async function loadPackage(ctx: StepContext<LoadDataParams>, dataset: PackageDataset, seed: number): Promise<DatasetManifest> {
  const { samples, malformed } = await selectPackageSamples(dataset, { limitPerClass: ctx.params.limit_per_class, seed });
  if (malformed.length > 0) ctx.log.warn(describeMalformed(dataset, malformed));
  const entries = samples.map(({ index, label, split, hash }): ManifestEntry => ({ index, source: dataset, label, split, hash }));
  return { classes: [...PACKAGE_CLASSES[dataset]], entries };
}

async function loadFiles(ctx: StepContext<LoadDataParams>, seed: number): Promise<DatasetManifest> {
  const show = (path: string) => workspacePath(ctx.workdir, path);
  const root = resolve(ctx.workdir, ctx.params.path!);
  const found: FoundImages = ctx.params.source === 'csv'
    ? await readCsvDataset(root, { path: ctx.params.path_column, label: ctx.params.label_column, split: ctx.params.split_column }, show)
    : await scanImageFolder(root, show);
  if (found.ignoredFiles > 0) ctx.log.info(`ignored ${found.ignoredFiles} files that are not images in class folders`);
  const images = ctx.params.limit_per_class ? limitPerClass(found.images, ctx.params.limit_per_class, seed) : found.images;
  const entries = await checkImages(ctx, images);
  const missing = found.classes.filter((_, label) => !entries.some((e) => e.label === label));
  if (missing.length > 0) throw new StepUserError(`no readable images left in class ${missing.join(', ')}`);
  return { classes: found.classes, entries };
}

/** Decodes every image once; an unreadable one fails the stage or, with on_bad_image: skip, is left out with a warning. */
async function checkImages(ctx: StepContext<LoadDataParams>, images: readonly FoundImage[]): Promise<ManifestEntry[]> {
  const bad: string[] = [];
  const entries: ManifestEntry[] = [];
  const check = async (image: FoundImage): Promise<ManifestEntry | undefined> => {
    const path = workspacePath(ctx.workdir, image.file);
    try {
      return { path, label: image.label, split: image.split, hash: await checkImageFile(image.file) };
    } catch (error) {
      const problem = imageProblem(error, image.listedAt);
      if (ctx.params.on_bad_image === 'error') throw new StepUserError(`${path}: ${problem}`);
      bad.push(`${path} (${problem})`);
      return undefined;
    }
  };
  await forEachBatch(images, {
    batchSize: BATCH,
    signal: ctx.signal,
    onBatch: (results, done) => {
      for (const entry of results) if (entry) entries.push(entry);
      ctx.progress(done, images.length, 'images');
    },
  }, check);
  if (bad.length > 0) {
    const more = bad.length > BAD_IMAGES_SHOWN ? `, and ${bad.length - BAD_IMAGES_SHOWN} more` : '';
    ctx.log.warn(`skipped ${bad.length} unreadable image${bad.length === 1 ? '' : 's'}: ${bad.slice(0, BAD_IMAGES_SHOWN).join(', ')}${more}`);
  }
  return entries;
}

function imageProblem(error: unknown, listedAt: string | undefined): string {
  const where = listedAt ? `, listed in ${listedAt}` : '';
  if (error instanceof UnreadableImageError) return `${error.message}${where}`;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `not found${where}`;
  if (code === 'EACCES' || code === 'EISDIR') return `cannot be read (${code})${where}`;
  throw error;
}

/** A path relative to the pipeline's folder with `/` separators, so a manifest is the same on every machine. */
export function workspacePath(workdir: string, path: string): string {
  return relative(workdir, path).split(sep).join('/') || '.';
}

function countSplits(entries: readonly ManifestEntry[]): string {
  const counts = new Map<string, number>();
  for (const { split } of entries) if (split) counts.set(split, (counts.get(split) ?? 0) + 1);
  return counts.size === 0 ? '' : ` (${[...counts].map(([split, n]) => `${split} ${n}`).join(', ')})`;
}
