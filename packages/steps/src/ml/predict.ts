import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { StepUserError, type StepSettings } from '@headstart/core';
import type { SplitBatch } from '../data/dataset.js';
import { flipAveraged } from './batch-prediction.js';
import { IMAGE_EXTENSIONS, toRgb, UnreadableImageError } from '../data/image.js';
import { compareCodePoints } from '../data/image-folder.js';
import { IMAGE_CONCURRENCY, mapBounded } from '../data/parallel.js';
import { backendSetting, loadBackend, type BackendName } from '../runtime/backend.js';
import { imageDecodingFor, type ImageDecoding } from './image-decoding.js';
import { readModelMetadata, type ModelMetadata } from './model-artifact.js';
import { modelOutputs } from './model-outputs.js';
import { predictionThreads } from './prediction-pool.js';

/** What a folder is searched for: what load-data takes, and the other formats sharp reads. */
export const PREDICT_EXTENSIONS: ReadonlySet<string> = new Set([...IMAGE_EXTENSIONS, '.gif', '.tif', '.tiff', '.avif']);

export interface PredictOptions {
  /** A model artifact directory (model.json with headstart's metadata). */
  model: string;
  /** The preprocess output the model was trained on: how its images were resized (see imageDecodingFor). */
  dataset?: string;
  /** Image files (read whatever their extension) and folders (searched recursively). */
  paths: readonly string[];
  topK?: number;
  batchSize?: number;
  /** Test-time augmentation: `flip` averages each image's probabilities with its mirror image's, as evaluate's `tta` does. */
  tta?: { flip: boolean };
  signal?: AbortSignal;
  /** The backend and thread count the user asked for, as a step's `ctx.settings`. */
  settings?: StepSettings;
  /** Told which backend runs. */
  log?: (line: string) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface ClassScore {
  class: string;
  probability: number;
}

export interface ImagePrediction {
  /** As given, or the folder given joined with the path below it. */
  path: string;
  /** The `topK` most probable classes, most probable first. */
  top: ClassScore[];
}

export interface PredictSummary {
  predictions: ImagePrediction[];
  backend: BackendName;
  /** Prediction threads that ran the model. */
  threads: number;
  decoding: ImageDecoding;
  /** The decoding is preprocess's defaults: neither the dataset nor an export's preprocessing.json said. */
  assumed: boolean;
}

/**
 * Classifies image files with a model artifact, preparing each exactly as the pipeline prepared its
 * training images: decoded by preprocess's own function (`toRgb`) with the dataset's size, fit and
 * background, then `toModelInput` with the preprocessing the model records, as evaluate does.
 */
export async function predictImages(options: PredictOptions): Promise<PredictSummary> {
  const metadata = await readModelMetadata(options.model);
  const files = await findImages(options.paths);
  const { decoding, assumed } = await imageDecodingFor({ model: options.model, metadata, ...(options.dataset ? { dataset: options.dataset } : {}) });
  const { tf, backend } = await loadBackend(backendSetting(options.settings?.backend), { ...(options.log ? { log: options.log } : {}) });
  const batchSize = options.batchSize ?? 32;
  const signal = options.signal ?? new AbortController().signal;
  const threads = predictionThreads(files.length, batchSize, options.settings?.threads);
  const batches = decodeBatches(files, decoding, batchSize, signal);
  const probabilities: Float32Array[] = [];
  const flip = options.tta?.flip ?? false;
  for await (const batch of modelOutputs(tf, batches, { backend, modelDir: options.model, size: decoding.size, batchSize, threads, flip, signal })) {
    probabilities.push(...classProbabilities(flip ? flipAveraged(batch) : batch.output, metadata));
    options.onProgress?.(probabilities.length, files.length);
  }
  const k = Math.min(options.topK ?? 3, metadata.classes.length);
  const predictions = files.map((path, i) => ({ path, top: topClasses(probabilities[i]!, metadata.classes, k) }));
  return { predictions, backend, threads, decoding, assumed };
}

/** The image files under `paths`, in the order given; a folder's files sorted by path. */
export async function findImages(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new StepUserError(`${path}: not found`) : error;
    });
    if (!info.isDirectory()) {
      found.push(path);
      continue;
    }
    const images = (await imagesUnder(path)).sort(compareCodePoints);
    if (images.length === 0) throw new StepUserError(`${path}: no images (${[...PREDICT_EXTENSIONS].join(', ')}) in this folder`);
    found.push(...images);
  }
  return found;
}

async function imagesUnder(folder: string): Promise<string[]> {
  const entries: Dirent[] = await readdir(folder, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.') && PREDICT_EXTENSIONS.has(extname(entry.name).toLowerCase()))
    .map((entry) => join(entry.parentPath, entry.name))
    .filter((path) => !path.slice(folder.length).split(/[\\/]/).some((part) => part.startsWith('.')));
}

/** The files decoded `batchSize` at a time, as the rows of a preprocessed split. */
async function* decodeBatches(files: readonly string[], decoding: ImageDecoding, batchSize: number, signal: AbortSignal): AsyncGenerator<SplitBatch> {
  for (let start = 0; start < files.length; start += batchSize) {
    signal.throwIfAborted();
    const batch = files.slice(start, start + batchSize);
    const pixels = await mapBounded(batch, IMAGE_CONCURRENCY, (file) => decodeImage(file, decoding));
    const images = new Uint8Array(pixels.reduce((n, p) => n + p.length, 0));
    pixels.forEach((p, i) => images.set(p, i * p.length));
    yield { images, labels: new Int32Array(0), count: batch.length };
  }
}

async function decodeImage(file: string, decoding: ImageDecoding): Promise<Uint8Array> {
  const bytes = await readFile(file);
  try {
    return await toRgb(bytes, decoding);
  } catch (error) {
    if (error instanceof UnreadableImageError) throw new StepUserError(`${file}: ${error.message}`);
    throw error;
  }
}

/** One row of class probabilities per image; a binary model's sigmoid p becomes (1 − p, p). */
function classProbabilities(output: Float32Array, metadata: ModelMetadata): Float32Array[] {
  if (metadata.binary) return Array.from(output, (p) => Float32Array.of(1 - p, p));
  const classCount = metadata.classes.length;
  return Array.from({ length: output.length / classCount }, (_, row) => output.subarray(row * classCount, (row + 1) * classCount));
}

function topClasses(probabilities: Float32Array, classes: readonly string[], k: number): ClassScore[] {
  const order = classes.map((_, i) => i).sort((a, b) => probabilities[b]! - probabilities[a]! || a - b);
  return order.slice(0, k).map((i) => ({ class: classes[i]!, probability: probabilities[i]! }));
}
