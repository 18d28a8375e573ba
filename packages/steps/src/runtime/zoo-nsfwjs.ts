import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { writeDirAtomic } from './atomic-file.js';
import { sha256 } from '@headstart/core';
import { concatBytes, manifestBytes, readModelFiles, writeModelFiles, type ModelFiles } from './model-io.js';

/**
 * nsfwjs ships its Keras-converted models as JavaScript modules (a model.json object and base64 weight
 * shards), reachable only through its `exports`: `nsfwjs/models/mobilenet_v2`,
 * `nsfwjs/models/inception_v3` and `nsfwjs/models/mobilenet_v2_mid` (a graph model). Parsing those modules and decoding the base64 is what makes the
 * first load slow, so the result is converted once into a plain model.json + weights.bin under
 * `<cacheDir>/zoo/`.
 */
export type NsfwjsModel = 'mobilenet_v2' | 'inception_v3' | 'mobilenet_v2_mid';

interface ModelDefinition {
  modelJson: () => Promise<{ default: Tfjs.io.ModelJSON }>;
  weightBundles: Array<() => Promise<{ default: string }>>;
}

const require = createRequire(import.meta.url);

export function nsfwjsVersion(): string {
  // nsfwjs's `exports` hide its package.json; walk up from its entry point instead.
  let dir = path.dirname(require.resolve('nsfwjs'));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'nsfwjs' && pkg.version) return pkg.version;
    } catch {
      // not here: keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the package.json of nsfwjs');
    dir = parent;
  }
}

export function nsfwjsCacheDir(cacheDir: string, model: NsfwjsModel): string {
  return path.join(cacheDir, 'zoo', `${model}-nsfwjs-${nsfwjsVersion()}`);
}

/** The model's files, from the converted cache when it is there and intact, else converted now. */
export async function nsfwjsModelFiles(model: NsfwjsModel, cacheDir: string): Promise<ModelFiles> {
  const dir = nsfwjsCacheDir(cacheDir, model);
  const cached = await readVerified(dir);
  if (cached) return cached;
  const files = await convertFromNsfwjs(model);
  await rm(dir, { recursive: true, force: true }); // a damaged earlier conversion
  await writeDirAtomic(dir, (tmp) => writeModelFiles(tmp, files));
  return files;
}

/** Reads the model straight from nsfwjs's modules (what the cache saves us from doing again). */
export async function convertFromNsfwjs(model: NsfwjsModel): Promise<ModelFiles> {
  const definition = await importDefinition(model);
  const json = (await definition.modelJson()).default;
  const shards = await Promise.all(definition.weightBundles.map(async (load) => Buffer.from((await load()).default, 'base64')));
  const weightData = concatBytes(shards);
  if (weightData.byteLength !== manifestBytes(json)) {
    throw new Error(`nsfwjs ${model}: ${weightData.byteLength} weight bytes, the manifest needs ${manifestBytes(json)}`);
  }
  const metadata = { headstart: { source: `nsfwjs@${nsfwjsVersion()}/models/${model}`, weightsSha256: sha256(new Uint8Array(weightData)) } };
  return {
    json: { ...json, format: json.format ?? 'layers-model', convertedBy: 'headstart', userDefinedMetadata: { ...graphSignature(json), ...metadata } },
    weightData,
  };
}

/** A graph model's signature (names its input and output) lives in its metadata: keep it. */
function graphSignature(json: Tfjs.io.ModelJSON): object {
  return json.format === 'graph-model' ? (json.userDefinedMetadata ?? {}) : {};
}

async function importDefinition(model: NsfwjsModel): Promise<ModelDefinition> {
  if (model === 'mobilenet_v2') return (await import('nsfwjs/models/mobilenet_v2')).MobileNetV2Model as ModelDefinition;
  if (model === 'mobilenet_v2_mid') return (await import('nsfwjs/models/mobilenet_v2_mid')).MobileNetV2MidModel as ModelDefinition;
  return (await import('nsfwjs/models/inception_v3')).InceptionV3Model as ModelDefinition;
}

/** A cached conversion is used only if its weights still hash to what was recorded; else it is redone. */
async function readVerified(dir: string): Promise<ModelFiles | null> {
  let files: ModelFiles;
  try {
    files = await readModelFiles(dir);
  } catch {
    return null;
  }
  const recorded = (files.json.userDefinedMetadata?.['headstart'] as { weightsSha256?: string } | undefined)?.weightsSha256;
  return recorded !== undefined && recorded === sha256(new Uint8Array(files.weightData)) ? files : null;
}
