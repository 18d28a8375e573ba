import { createRequire } from 'node:module';
import type { BuiltinStep, StepRegistry } from '@headstart/core';
import type { exportDataset as exportDatasetNow } from './data/export.js';
import type { initPipeline as initPipelineNow } from './init-pipeline.js';
import type { exportModel as exportModelNow } from './ml/export-model.js';
import type { predictImages as predictImagesNow } from './ml/predict.js';

const manifest = createRequire(import.meta.url)('../package.json') as { name: string; version: string };

/** Built-in steps, loaded only when a pipeline uses them (so a cached run imports no ML library). */
const builtins: Record<string, BuiltinStep> = {
  shell: { load: async () => (await import('./steps/shell.js')).default },
  'load-data': { load: async () => (await import('./steps/load-data.js')).default },
  preprocess: { load: async () => (await import('./steps/preprocess.js')).default },
  'extract-features': { load: async () => (await import('./steps/extract-features.js')).default },
  'train-head': { load: async () => (await import('./steps/train-head.js')).default },
  train: { load: async () => (await import('./steps/train.js')).default },
  unfreeze: { load: async () => (await import('./steps/unfreeze.js')).default },
  'fine-tune': { load: async () => (await import('./steps/fine-tune.js')).default },
  'lr-find': { load: async () => (await import('./steps/lr-find.js')).default },
  evaluate: { load: async () => (await import('./steps/evaluate.js')).default },
};

export const builtinSteps: StepRegistry = {
  packageName: manifest.name,
  packageVersion: manifest.version,
  steps: new Map(Object.entries(builtins)),
};

export type { ExportOptions, ExportSummary } from './data/export.js';

/** Writes a PNG image folder from an npm dataset package. Loaded on demand: it imports sharp. */
export async function exportDataset(...args: Parameters<typeof exportDatasetNow>): ReturnType<typeof exportDatasetNow> {
  return (await import('./data/export.js')).exportDataset(...args);
}

export type { ClassScore, ImagePrediction, PredictOptions, PredictSummary } from './ml/predict.js';
export type { ExportedModel, ExportModelOptions } from './ml/export-model.js';
export type { InitOptions, InitSummary, InitTemplate } from './init-pipeline.js';

/** Classifies image files with a model artifact, prepared as its training images were. Loaded on demand: it imports sharp and TensorFlow.js. */
export async function predictImages(...args: Parameters<typeof predictImagesNow>): ReturnType<typeof predictImagesNow> {
  return (await import('./ml/predict.js')).predictImages(...args);
}

/** Writes a model artifact for plain TensorFlow.js (the browser): model, labels, preprocessing, README. Loaded on demand. */
export async function exportModel(...args: Parameters<typeof exportModelNow>): ReturnType<typeof exportModelNow> {
  return (await import('./ml/export-model.js')).exportModel(...args);
}

/** Writes a headstart.yaml for an image folder. Loaded on demand: it imports sharp. */
export async function initPipeline(...args: Parameters<typeof initPipelineNow>): ReturnType<typeof initPipelineNow> {
  return (await import('./init-pipeline.js')).initPipeline(...args);
}
