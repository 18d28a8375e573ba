import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { StepUserError } from '@headstart/core';
import type { PackageDataset } from './dataset.js';
import { PACKAGE_DATASETS } from './dataset.js';
import type { MalformedSample, PackageSample } from './npm-datasets.js';
import { describeMalformed, PACKAGE_CLASSES, PACKAGE_IMAGE_SIZE, selectPackageSamples } from './npm-datasets.js';
import { forEachBatch } from './parallel.js';
// The CLI imports this module at start-up (through the package's index): sharp (~60 ms) loads only when an export runs.
const loadImageCodec = () => import('./image.js');

/**
 * Writes an npm dataset package as a folder of PNG images that load-data reads as it would any image
 * folder: `out/train/<class>/<n>.png` and `out/test/<class>/<n>.png`, n being the sample's index in its
 * class in the package. Train and test follow the package's own division (fashion-mnist: Zalando's test
 * set is each class's first 1,000 samples); mnist has none, so the last 1/7 of each class is the test
 * set. `perClass` limits train to N per class, chosen by the seed, and test gets its own share:
 * min(N, available). The folder is filled under a temporary name and renamed when complete, so an
 * interrupted export never looks finished.
 */

export interface ExportOptions {
  out: string;
  perClass?: number;
  seed?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface ExportSummary {
  out: string;
  classes: string[];
  train: number;
  test: number;
  malformed: MalformedSample[];
  /** Lines worth showing the user (the malformed samples skipped). */
  warnings: string[];
}

export async function exportDataset(dataset: string, options: ExportOptions): Promise<ExportSummary> {
  const source = checkDataset(dataset);
  if (options.perClass !== undefined && !(Number.isInteger(options.perClass) && options.perClass >= 1)) {
    throw new StepUserError(`--per-class must be a positive integer, got ${options.perClass}`);
  }
  const out = resolve(options.out);
  await checkOutFree(out);
  const { samples, malformed } = await selectPackageSamples(source, { limitPerClass: options.perClass, seed: options.seed ?? 0, holdOutTest: true });
  const tmp = `${out}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(dirname(out), { recursive: true });
  try {
    await writeImages(tmp, source, samples, options);
    await moveIntoPlace(tmp, out);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  return {
    out,
    classes: PACKAGE_CLASSES[source].map(classFolderName),
    train: samples.filter((s) => s.split === 'train').length,
    test: samples.filter((s) => s.split === 'test').length,
    malformed,
    warnings: malformed.length > 0 ? [describeMalformed(source, malformed)] : [],
  };
}

/** "T-shirt/top" cannot be a folder name: path separators become "_". */
export function classFolderName(className: string): string {
  return className.replace(/[/\\]/g, '_');
}

function checkDataset(dataset: string): PackageDataset {
  if ((PACKAGE_DATASETS as readonly string[]).includes(dataset)) return dataset as PackageDataset;
  throw new StepUserError(`unknown dataset "${dataset}" (one of: ${PACKAGE_DATASETS.join(', ')})`);
}

async function checkOutFree(out: string): Promise<void> {
  const entries = await readdir(out).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    if (error.code === 'ENOTDIR') throw new StepUserError(`${out} exists and is not a folder`);
    throw error;
  });
  if (entries.length > 0) throw new StepUserError(`${out} already exists and is not empty; remove it or choose another --out`);
}

async function writeImages(tmp: string, source: PackageDataset, samples: readonly PackageSample[], options: ExportOptions): Promise<void> {
  const { grayPng } = await loadImageCodec();
  const folders = new Set(samples.map((s) => folderOf(tmp, source, s)));
  for (const folder of folders) await mkdir(folder, { recursive: true });
  await forEachBatch(samples, {
    batchSize: 256,
    signal: options.signal,
    onBatch: (_results, done) => options.onProgress?.(done, samples.length),
  }, async (sample) => {
    const png = await grayPng({ pixels: sample.pixels, width: PACKAGE_IMAGE_SIZE, height: PACKAGE_IMAGE_SIZE });
    await writeFile(join(folderOf(tmp, source, sample), `${sample.index}.png`), png);
  });
}

function folderOf(root: string, source: PackageDataset, sample: PackageSample): string {
  return join(root, sample.split ?? 'train', classFolderName(PACKAGE_CLASSES[source][sample.label]!));
}

async function moveIntoPlace(tmp: string, out: string): Promise<void> {
  await rmdir(out).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  await rename(tmp, out);
}
