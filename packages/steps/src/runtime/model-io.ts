import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import { writeFileAtomic } from '@headstart/core';
import { RuntimeUserError } from './errors.js';

type IOHandler = Tfjs.io.IOHandler;
type ModelArtifacts = Tfjs.io.ModelArtifacts;
type ModelJSON = Tfjs.io.ModelJSON;
type LayersModel = Tfjs.LayersModel;

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** A model in TensorFlow.js layers (or graph) format, read from disk: its model.json and all weight bytes. */
export interface ModelFiles {
  json: ModelJSON;
  /** The shards of every manifest group, concatenated in manifest order (what tfjs's loaders expect). */
  weightData: ArrayBuffer;
}

/**
 * A file-system IOHandler for `model.save()` and `tf.loadLayersModel()`: tfjs's own `file://` handler
 * exists only in tfjs-node. `location` is a model.json path or the directory holding it. Saving writes
 * one weights.bin and then model.json, each atomically, so model.json never names missing weights.
 */
export function fileSystemIO(location: string): IOHandler {
  const jsonPath = modelJsonPath(location);
  return {
    save: async (artifacts) => {
      await writeModelFiles(path.dirname(jsonPath), modelFilesFromArtifacts(artifacts));
      return { modelArtifactsInfo: artifactsInfo(artifacts) };
    },
    load: async () => artifactsFromModelFiles(await readModelFiles(jsonPath)),
  };
}

export async function saveModel(model: LayersModel, dir: string): Promise<void> {
  await model.save(fileSystemIO(dir));
}

export async function loadModel(tf: Tf, location: string, options: { strict?: boolean } = {}): Promise<LayersModel> {
  return tf.loadLayersModel(fileSystemIO(location), { strict: options.strict ?? true });
}

/** `dir/model.json` for a directory, the path itself for a `.json` file. */
export function modelJsonPath(location: string): string {
  return location.endsWith('.json') ? location : path.join(location, MODEL_JSON);
}

export async function readModelFiles(location: string): Promise<ModelFiles> {
  const jsonPath = modelJsonPath(location);
  const json = await readModelJson(jsonPath);
  const shards: Buffer[] = [];
  for (const shardPath of shardPaths(json)) {
    const file = path.join(path.dirname(jsonPath), shardPath);
    shards.push(await readFile(file).catch((error: unknown) => {
      throw new RuntimeUserError(`${jsonPath} names weight file ${shardPath}, which cannot be read (${codeOf(error)})`);
    }));
  }
  const weightData = concatBytes(shards);
  const expected = manifestBytes(json);
  if (weightData.byteLength !== expected) {
    throw new RuntimeUserError(`${jsonPath}: weight files hold ${weightData.byteLength} bytes, its manifest needs ${expected}`);
  }
  return { json, weightData };
}

export async function writeModelFiles(dir: string, files: ModelFiles): Promise<void> {
  await writeFileAtomic(path.join(dir, WEIGHTS_BIN), new Uint8Array(files.weightData));
  const specs = files.json.weightsManifest.flatMap((group) => group.weights);
  const json: ModelJSON = { ...files.json, weightsManifest: [{ paths: [WEIGHTS_BIN], weights: specs }] };
  await writeFileAtomic(path.join(dir, MODEL_JSON), JSON.stringify(json));
}

export function artifactsFromModelFiles(files: ModelFiles): ModelArtifacts {
  const { weightsManifest, ...rest } = files.json;
  return { ...rest, weightSpecs: weightsManifest.flatMap((group) => group.weights), weightData: files.weightData };
}

export function modelFilesFromArtifacts(artifacts: ModelArtifacts): ModelFiles {
  if (artifacts.modelTopology instanceof ArrayBuffer || !artifacts.modelTopology) {
    throw new Error('only layers models with a JSON topology can be saved');
  }
  // getWeightStream is a function: it has no place in model.json.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  const { weightSpecs = [], weightData, modelTopology, getWeightStream, ...rest } = artifacts;
  const data = weightData === undefined ? new ArrayBuffer(0) : concatBytes(asArray(weightData).map((b) => new Uint8Array(b)));
  const json: ModelJSON = {
    format: 'layers-model',
    generatedBy: rest.generatedBy ?? 'headstart',
    ...rest,
    modelTopology,
    weightsManifest: [{ paths: [WEIGHTS_BIN], weights: weightSpecs }],
  };
  return { json, weightData: data };
}

export function shardPaths(json: ModelJSON): string[] {
  return json.weightsManifest.flatMap((group) => group.paths);
}

/** Bytes the manifest's weights take (quantized ones at their stored size). */
export function manifestBytes(json: ModelJSON): number {
  let total = 0;
  for (const spec of json.weightsManifest.flatMap((group) => group.weights)) {
    const elements = spec.shape.reduce((n, d) => n * d, 1);
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    total += elements * (BYTES[dtype] ?? Number.NaN);
  }
  return total;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

async function readModelJson(jsonPath: string): Promise<ModelJSON> {
  const text = await readFile(jsonPath, 'utf8').catch((error: unknown) => {
    throw new RuntimeUserError(`cannot read model ${jsonPath} (${codeOf(error)})`);
  });
  let json: Partial<ModelJSON>;
  try {
    json = JSON.parse(text) as Partial<ModelJSON>;
  } catch (error) {
    throw new RuntimeUserError(`${jsonPath} is not valid JSON (${(error as Error).message})`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new RuntimeUserError(`${jsonPath} is not a TensorFlow.js model (no modelTopology/weightsManifest)`);
  }
  return json as ModelJSON;
}

export async function isFile(file: string): Promise<boolean> {
  return stat(file).then((s) => s.isFile(), () => false);
}

function artifactsInfo(artifacts: ModelArtifacts): Tfjs.io.ModelArtifactsInfo {
  const weightBytes = asArray(artifacts.weightData ?? []).reduce((n, b) => n + b.byteLength, 0);
  return {
    dateSaved: new Date(),
    modelTopologyType: 'JSON',
    modelTopologyBytes: JSON.stringify(artifacts.modelTopology ?? {}).length,
    weightSpecsBytes: JSON.stringify(artifacts.weightSpecs ?? []).length,
    weightDataBytes: weightBytes,
  };
}

function asArray(data: ArrayBuffer | ArrayBuffer[]): ArrayBuffer[] {
  return Array.isArray(data) ? data : [data];
}

export function concatBytes(parts: readonly Uint8Array[]): ArrayBuffer {
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out.buffer;
}

function codeOf(error: unknown): string {
  return (error as { code?: string } | null)?.code ?? String(error);
}
