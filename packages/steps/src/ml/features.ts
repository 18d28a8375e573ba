import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError } from '@headstart/core';
import { CLASSES_FILE, SPLITS, readClasses, type Split } from '../data/dataset.js';
import type { RgbOptions } from '../data/image.js';
import type { BaseInfo } from '../runtime/base-model.js';
import { NpyReader } from '../runtime/npy.js';

/**
 * extract-features's artifact: per split `<split>/features.npy` (float32 [N, …featureShape]) and
 * `<split>/labels.npy` (int32 [N]), `classes.json`, and `base.json`: how to rebuild the frozen base
 * that made them, so train-head can put the head back on top of it.
 */
export const BASE_FILE = 'base.json';

export interface BaseRecipe {
  /** The `base:` reference (`mobilenet_v2`, `file:…`, `https://…`). */
  ref: string;
  sha256?: string;
  inputSize: number;
  info: BaseInfo;
  /** How preprocess decoded the images (fit, background): recorded so predict decodes new images alike. */
  imageDecoding?: RgbOptions;
}

export interface FeatureSplit {
  split: Split;
  features: Float32Array;
  labels: Int32Array;
  /** Shape of one feature row. */
  rowShape: number[];
  count: number;
}

export function featureFiles(dir: string, split: Split): { features: string; labels: string } {
  return { features: join(dir, split, 'features.npy'), labels: join(dir, split, 'labels.npy') };
}

export async function writeFeatureMetadata(dir: string, datasetDir: string, recipe: BaseRecipe): Promise<void> {
  await copyFile(join(datasetDir, CLASSES_FILE), join(dir, CLASSES_FILE));
  await writeFile(join(dir, BASE_FILE), `${JSON.stringify(recipe, null, 2)}\n`);
}

export async function prepareSplitDir(dir: string, split: Split): Promise<void> {
  await mkdir(join(dir, split), { recursive: true });
}

export async function readBaseRecipe(dir: string): Promise<BaseRecipe> {
  try {
    return JSON.parse(await readFile(join(dir, BASE_FILE), 'utf8')) as BaseRecipe;
  } catch {
    throw new StepUserError(`${dir}: not features made by extract-features (no readable ${BASE_FILE})`);
  }
}

/** The splits present in a features artifact, in train/val/test order. */
export async function featureSplits(dir: string): Promise<Split[]> {
  const present: Split[] = [];
  for (const split of SPLITS) {
    try {
      await (await NpyReader.open(featureFiles(dir, split).features)).close();
      present.push(split);
    } catch {
      // absent split
    }
  }
  return present;
}

/** Loads one split whole: features are small (N × 1280 floats) next to the images they came from. */
export async function readFeatureSplit(dir: string, split: Split): Promise<FeatureSplit> {
  const files = featureFiles(dir, split);
  const features = await NpyReader.open(files.features);
  const labels = await NpyReader.open(files.labels);
  try {
    const data = (await features.readAll()) as Float32Array;
    const labelData = (await labels.readAll()) as Int32Array;
    return { split, features: data, labels: labelData, rowShape: features.shape.slice(1), count: labelData.length };
  } finally {
    await Promise.all([features.close(), labels.close()]);
  }
}

export { readClasses };
