import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError } from '@headstart/core';
import type { Tf } from '../runtime/backend.js';
import type { FrozenBase } from '../runtime/base-model.js';
import type { GraphBase } from '../runtime/graph-base.js';
import { loadModel, MODEL_JSON, saveModel, writeModelFiles } from '../runtime/model-io.js';
import type { Preprocessing } from '../runtime/preprocessing.js';
import { graphCannotTrain, loadFrozenBase } from '../runtime/zoo.js';
import type { BaseRecipe } from './features.js';
import type { History } from './training.js';

/**
 * A model artifact: tfjs layers format (`model.json` + `weights.bin`) whose `userDefinedMetadata.headstart`
 * says what a user of the model needs and must never re-type: the classes, how to scale the pixels, the
 * base it grew from, and which layers are the head.
 */
export interface ModelMetadata {
  classes: string[];
  preprocessing: Preprocessing;
  base: BaseRecipe;
  /** Names of the layers added on top of the base (trainable in every phase). */
  headLayers: string[];
  binary: boolean;
  /** Each training phase that produced these weights, oldest first (head, fine-tune…): what a report plots. */
  history?: PhaseHistory[];
  /**
   * Set when the base is a tfjs graph model, which cannot be joined to a layers head: model.json then
   * holds the head alone and this folder (relative to it) the graph base, run first (see loadPredictor).
   */
  graphBase?: string;
}

/** Where a model artifact keeps a graph base. */
export const GRAPH_BASE_DIR = 'base';

export interface PhaseHistory extends History {
  phase: string;
}

/** The metadata with one more training phase recorded. */
export function withPhase(metadata: ModelMetadata, phase: string, history: History): ModelMetadata {
  return { ...metadata, history: [...(metadata.history ?? []), { phase, ...history }] };
}

export async function saveModelArtifact(model: Tfjs.LayersModel, dir: string, metadata: ModelMetadata): Promise<void> {
  model.setUserDefinedMetadata({ headstart: metadata });
  await saveModel(model, dir);
}

export async function readModelMetadata(dir: string): Promise<ModelMetadata> {
  let json: { userDefinedMetadata?: { headstart?: ModelMetadata } };
  try {
    json = JSON.parse(await readFile(join(dir, MODEL_JSON), 'utf8'));
  } catch {
    throw new StepUserError(`${dir}: not a model artifact (no readable ${MODEL_JSON})`);
  }
  const metadata = json.userDefinedMetadata?.headstart;
  if (!metadata?.classes || !metadata.preprocessing) throw new StepUserError(`${dir}: a tfjs model, but not one headstart made (no class list or preprocessing)`);
  return metadata;
}

/** The artifact as one layers model, to train or edit: refused when its base is a graph model (see loadPredictor). */
export async function loadModelArtifact(tf: Tf, dir: string): Promise<{ model: Tfjs.LayersModel; metadata: ModelMetadata }> {
  const metadata = await readModelMetadata(dir);
  if (metadata.graphBase !== undefined) throw new StepUserError(graphCannotTrain(metadata.base.ref));
  return { model: await loadModel(tf, dir), metadata };
}

/**
 * Saves a head trained on a graph base's features: the head as model.json, the graph model's own files
 * under `base/`. The recipe in the metadata says where to cut the graph and how to pool.
 */
export async function saveGraphBasedArtifact(head: Tfjs.LayersModel, dir: string, metadata: ModelMetadata, base: GraphBase): Promise<void> {
  await writeModelFiles(join(dir, GRAPH_BASE_DIR), base.files);
  await saveModelArtifact(head, dir, { ...metadata, graphBase: GRAPH_BASE_DIR });
}

/** A model artifact as a function from preprocessed images to its output (class probabilities). */
export interface Predictor {
  metadata: ModelMetadata;
  predict(input: Tfjs.Tensor): Tfjs.Tensor;
  dispose(): void;
}

/** Loads an artifact to predict with: one layers model, or a graph base followed by the head. */
export async function loadPredictor(tf: Tf, dir: string, batchSize?: number): Promise<Predictor> {
  const metadata = await readModelMetadata(dir);
  const model = await loadModel(tf, dir);
  if (metadata.graphBase === undefined) {
    return { metadata, predict: (x) => model.predict(x, batchSize === undefined ? {} : { batchSize }) as Tfjs.Tensor, dispose: () => model.dispose() };
  }
  let base: FrozenBase;
  try {
    base = await loadArtifactBase(tf, dir, metadata);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return {
    metadata,
    predict: (x) => tf.tidy(() => model.predict(base.predict(x, batchSize), batchSize === undefined ? {} : { batchSize }) as Tfjs.Tensor),
    dispose: () => {
      base.dispose();
      model.dispose();
    },
  };
}

/** The graph base an artifact carries, cut and pooled as its features were made. */
export function loadArtifactBase(tf: Tf, dir: string, metadata: ModelMetadata): Promise<FrozenBase> {
  const { inputSize, info } = metadata.base;
  return loadFrozenBase(tf, `file:${join(dir, metadata.graphBase ?? GRAPH_BASE_DIR, MODEL_JSON)}`, {
    cacheDir: dir,
    inputSize,
    layer: info.layer,
    pooling: info.pooling,
    preprocessing: info.preprocessing,
  });
}
