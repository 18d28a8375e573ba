import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StepUserError } from '@headstart/core';
import { readPreprocessing, type Fit } from '../data/dataset.js';
import type { RgbOptions } from '../data/image.js';
import type { Preprocessing } from '../runtime/preprocessing.js';
import { preprocessParamsSchema } from '../steps/preprocess.js';
import type { ModelMetadata } from './model-artifact.js';

/**
 * How the preprocess step turned an image file into the uint8 RGB square a model was trained on (sharp:
 * EXIF orientation, alpha flattened onto `background`, resized to `size` × `size` by `fit`, lanczos3).
 * The model's own metadata records what follows (channels, pixel range); this part lives with the dataset.
 */
export type ImageDecoding = RgbOptions;

/** An exported model's `preprocessing.json`: the model's preprocessing, and how its images were decoded. */
export interface ExportedPreprocessing extends Preprocessing {
  image: ImageDecoding & { kernel: 'lanczos3' };
  layout: 'NHWC';
}

export const EXPORTED_PREPROCESSING_FILE = 'preprocessing.json';

export interface DecodingSource {
  model: string;
  metadata: ModelMetadata;
  /** The preprocess output the model was trained on, when known. */
  dataset?: string;
}

/**
 * The decoding the model's training images had: as the model records it (models made since extract-features
 * version 2), else from the preprocessed dataset, else from an exported
 * model's preprocessing.json, else preprocess's defaults at the model's input size (`assumed`).
 */
export async function imageDecodingFor(source: DecodingSource): Promise<{ decoding: ImageDecoding; assumed: boolean }> {
  const recorded = source.metadata.base.imageDecoding;
  if (recorded) return { decoding: recorded, assumed: false };
  if (source.dataset) {
    const { size, fit, background } = await readPreprocessing(source.dataset);
    return { decoding: { size, fit, background }, assumed: false };
  }
  const exported = await readExportedDecoding(source.model);
  if (exported) return { decoding: exported, assumed: false };
  return { decoding: defaultDecoding(source.metadata.preprocessing.inputSize), assumed: true };
}

export function defaultDecoding(size: number): ImageDecoding {
  const { fit, background } = preprocessParamsSchema.properties;
  return { size, fit: fit.default as Fit, background: background.default };
}

async function readExportedDecoding(modelDir: string): Promise<ImageDecoding | undefined> {
  const file = join(modelDir, EXPORTED_PREPROCESSING_FILE);
  let json: Partial<ExportedPreprocessing>;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as Partial<ExportedPreprocessing>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StepUserError(`${file}: not readable JSON (${(error as Error).message})`);
  }
  const image = json.image;
  if (!image || !Number.isInteger(image.size) || typeof image.fit !== 'string' || typeof image.background !== 'string') {
    throw new StepUserError(`${file}: has no "image" block with size, fit and background`);
  }
  return { size: image.size, fit: image.fit, background: image.background };
}
