import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError, type StepSettings } from '@headstart/core';
import { writeDirAtomic } from '../runtime/atomic-file.js';
import { backendSetting, loadBackend, type Tf } from '../runtime/backend.js';
import { MODEL_JSON, readModelFiles, WEIGHTS_BIN, writeModelFiles, type ModelFiles } from '../runtime/model-io.js';
import { browserReadme } from './export-readme.js';
import { EXPORTED_PREPROCESSING_FILE, imageDecodingFor, type ExportedPreprocessing } from './image-decoding.js';
import { GRAPH_BASE_DIR, loadArtifactBase, readModelMetadata, type ModelMetadata } from './model-artifact.js';

export const LABELS_FILE = 'labels.json';
const README_FILE = 'README.md';
const EXPORT_FILES: ReadonlySet<string> = new Set([MODEL_JSON, WEIGHTS_BIN, LABELS_FILE, EXPORTED_PREPROCESSING_FILE, README_FILE, GRAPH_BASE_DIR]);

export interface ExportModelOptions {
  /** A model artifact directory. */
  model: string;
  /** The preprocess output the model was trained on (how its images were resized). */
  dataset?: string;
  /** The folder to write; replaced if it holds an earlier export, refused if it holds anything else. */
  out: string;
  /** The backend the user asked for, as a step's `ctx.settings` (the thread count is unused). */
  settings?: StepSettings;
  log?: (line: string) => void;
}

export interface ExportedModel {
  out: string;
  classes: string[];
  preprocessing: ExportedPreprocessing;
  /** The decoding is preprocess's defaults: the dataset the model was trained on was not found. */
  assumed: boolean;
}

/**
 * Writes a model for plain TensorFlow.js (`tf.loadLayersModel`, in the browser too): model.json and
 * weights.bin, labels.json (the classes in output order), preprocessing.json and a README saying how to
 * prepare an image. Checked first: the model loads with tfjs's built-in layers alone, without
 * headstart's metadata (which stays in model.json, where tfjs ignores it).
 */
export async function exportModel(options: ExportModelOptions): Promise<ExportedModel> {
  const metadata = await readModelMetadata(options.model);
  const files = await readModelFiles(options.model);
  const { decoding, assumed } = await imageDecodingFor({ model: options.model, metadata, ...(options.dataset ? { dataset: options.dataset } : {}) });
  const replacing = await isEarlierExport(options.out);
  const { tf } = await loadBackend(backendSetting(options.settings?.backend), { ...(options.log ? { log: options.log } : {}) });
  await checkPlainTfjs(tf, files, metadata, options.model);
  const graphBase = metadata.graphBase === undefined ? undefined : await checkGraphBase(tf, options.model, metadata);
  const { inputSize, channels, range, resize } = metadata.preprocessing;
  const preprocessing: ExportedPreprocessing = { inputSize, channels, range, resize, image: { ...decoding, kernel: 'lanczos3' }, layout: 'NHWC' };
  if (replacing) await rm(options.out, { recursive: true, force: true });
  await writeDirAtomic(options.out, async (dir) => {
    await writeModelFiles(dir, files);
    await writeFile(join(dir, LABELS_FILE), `${JSON.stringify(metadata.classes, null, 2)}\n`);
    await writeFile(join(dir, EXPORTED_PREPROCESSING_FILE), `${JSON.stringify(preprocessing, null, 2)}\n`);
    await writeFile(join(dir, README_FILE), browserReadme(preprocessing, metadata) + (graphBase ? graphBaseReadme(metadata) : ''));
    if (graphBase) await writeModelFiles(join(dir, GRAPH_BASE_DIR), graphBase);
  });
  return { out: options.out, classes: metadata.classes, preprocessing, assumed };
}

/**
 * Loads the model as a browser would see it, minus everything headstart adds (metadata, training
 * config), with tfjs's strict loader: a layer class tfjs does not ship, or weights that do not fit, fail
 * here rather than in a user's page. Its output must have one column per class (one for a binary model).
 */
async function checkPlainTfjs(tf: Tf, files: ModelFiles, metadata: ModelMetadata, modelDir: string): Promise<void> {
  const { modelTopology, weightsManifest } = files.json;
  let model: Tfjs.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology, weightSpecs: weightsManifest.flatMap((g) => g.weights), weightData: files.weightData }), { strict: true });
  } catch (error) {
    throw new StepUserError(`${modelDir}: does not load in plain TensorFlow.js (${(error as Error).message})`);
  }
  const columns = model.outputs[0]!.shape.at(-1);
  model.dispose();
  const expected = metadata.binary ? 1 : metadata.classes.length;
  if (model.outputs.length !== 1 || columns !== expected) {
    throw new StepUserError(`${modelDir}: the model's output has ${columns} columns, its class list needs ${expected}`);
  }
}

/** A graph base must load and run in tfjs with its recorded cut; its files are exported as they are. */
async function checkGraphBase(tf: Tf, modelDir: string, metadata: ModelMetadata): Promise<ModelFiles> {
  const base = await loadArtifactBase(tf, modelDir, metadata);
  base.dispose();
  return readModelFiles(join(modelDir, metadata.graphBase ?? GRAPH_BASE_DIR));
}

/** What the browser code above must do first when model.json is a head on a graph base's features. */
function graphBaseReadme(metadata: ModelMetadata): string {
  const { layer, pooling } = metadata.base.info;
  return `
## The base is a graph model

\`model.json\` here is the classifier head only: it takes the features of the graph model in
\`${GRAPH_BASE_DIR}/\` (from ${metadata.base.ref}), which cannot be joined into a layers model. Compute them first:

\`\`\`js
const graph = await tf.loadGraphModel(\`\${base}/${GRAPH_BASE_DIR}/model.json\`);
const features = tf.tidy(() => graph.execute(input, '${layer}')${pooling === 'avg' ? '.mean([1, 2])' : ''});
const probabilities = await model.predict(features).data();
\`\`\`
`;
}

/** Whether `out` holds an earlier export (to be replaced); anything else there is refused. */
async function isEarlierExport(out: string): Promise<boolean> {
  const info = await stat(out).catch(() => undefined);
  if (!info) return false;
  if (!info.isDirectory()) throw new StepUserError(`${out}: exists and is not a folder`);
  const strangers = (await readdir(out)).filter((name) => !EXPORT_FILES.has(name));
  if (strangers.length > 0) throw new StepUserError(`${out}: holds other files (${strangers.slice(0, 3).join(', ')}); export into a new or empty folder`);
  return true;
}
