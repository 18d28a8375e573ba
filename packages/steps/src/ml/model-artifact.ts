import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { StepUserError } from '@headstart/core';
import type { Tf } from '../runtime/backend.js';
import { loadModel, MODEL_JSON, saveModel } from '../runtime/model-io.js';
import type { Preprocessing } from '../runtime/preprocessing.js';
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
}

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

export async function loadModelArtifact(tf: Tf, dir: string): Promise<{ model: Tfjs.LayersModel; metadata: ModelMetadata }> {
  const metadata = await readModelMetadata(dir);
  return { model: await loadModel(tf, dir), metadata };
}
