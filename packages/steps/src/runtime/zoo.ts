import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import { BaseModel, type Pooling } from './base-model.js';
import { downloadModel } from './download.js';
import { RuntimeUserError } from './errors.js';
import { GraphBase, graphInputShape, isGraphModel, resolveGraphNode, withGraphInputSize } from './graph-base.js';
import { artifactsFromModelFiles, readModelFiles, type ModelFiles } from './model-io.js';
import { isPreprocessing, type Preprocessing } from './preprocessing.js';
import { cutAt, inputShape, outputLayerName, setInputSize } from './topology.js';
import { nsfwjsModelFiles, type NsfwjsModel } from './zoo-nsfwjs.js';

/** A pretrained base the zoo knows by name, described as data. */
export interface BaseDescriptor {
  name: BaseName;
  description: string;
  /** The size it was trained at. */
  nativeInputSize: number;
  /** Smallest input its strides and valid paddings allow. */
  minInputSize: number;
  /** Where `include_top: false` cuts: the last conv activation, like Keras (a graph model's node name, or its unique tail). */
  topLayer: string;
  /** The classifier flattens a fixed-size map, so `include_top: true` needs the native size. */
  headNeedsNativeSize: boolean;
  preprocessing: Preprocessing;
}

export const BASE_NAMES = ['mobilenet_v2', 'inception_v3', 'mnist_cnn', 'mobilenet_v2_mid'] as const;
export type BaseName = (typeof BASE_NAMES)[number];

/**
 * nsfwjs's bases descend from Keras's ImageNet MobileNetV2 / InceptionV3 (whose `preprocess_input`
 * maps pixels to [-1, 1]), but were last trained, and are run by nsfwjs, on pixels / 255. We feed
 * them [0, 1]: on Fashion-MNIST features it beat [-1, 1] by 3–5 points (see the runtime README).
 */
export const BASES: Readonly<Record<BaseName, BaseDescriptor>> = {
  mobilenet_v2: {
    name: 'mobilenet_v2',
    description: 'MobileNetV2 (alpha 1.0) from nsfwjs 4.4, Keras ImageNet lineage; 1280 features',
    nativeInputSize: 224,
    minInputSize: 32,
    topLayer: 'out_relu',
    headNeedsNativeSize: true,
    preprocessing: { inputSize: 224, channels: 3, range: [0, 1], resize: 'bilinear' },
  },
  inception_v3: {
    name: 'inception_v3',
    description: 'InceptionV3 from nsfwjs 4.4, Keras ImageNet lineage; 2048 features',
    nativeInputSize: 299,
    minInputSize: 75,
    topLayer: 'mixed10',
    headNeedsNativeSize: true,
    preprocessing: { inputSize: 299, channels: 3, range: [0, 1], resize: 'bilinear' },
  },
  mnist_cnn: {
    name: 'mnist_cnn',
    description: 'small CNN trained here on MNIST digits 0–4 (scripts/train-mnist-base.ts); 64 features',
    nativeInputSize: 28,
    minInputSize: 12,
    topLayer: 'conv3_relu',
    headNeedsNativeSize: false,
    preprocessing: { inputSize: 28, channels: 1, range: [0, 1], resize: 'bilinear' },
  },
  /** A TF Hub MobileNetV2 feature vector fine-tuned by nsfwjs, shipped as a tfjs graph model: frozen (no unfreeze or fine-tune). Its graph maps [0, 1] to [-1, 1] itself. */
  mobilenet_v2_mid: {
    name: 'mobilenet_v2_mid',
    description: 'MobileNetV2 (alpha 1.4, TF Hub lineage) from nsfwjs 4.4 as a frozen tfjs graph model (cannot be fine-tuned); 1792 features',
    nativeInputSize: 224,
    minInputSize: 32,
    topLayer: 'MobilenetV2/Conv_1/Relu6',
    headNeedsNativeSize: true,
    preprocessing: { inputSize: 224, channels: 3, range: [0, 1], resize: 'bilinear' },
  },
};

export interface LoadBaseOptions {
  /** Where converted zoo models and downloads are kept. */
  cacheDir: string;
  /** `file:` references resolve against it (the pipeline's directory). */
  baseDir?: string;
  /** Required for `https://` references: SHA-256 of model.json followed by its weight shards (see downloadModel). */
  sha256?: string;
  /** Square input size; the topology is rebuilt for it before loading. */
  inputSize?: number;
  /** Keep the classifier (zoo bases default to false, like Keras `include_top=False`). */
  includeTop?: boolean;
  /** Cut at this layer instead (pooling follows it). */
  layer?: string;
  /** `avg` (default): GlobalAveragePooling2D after the cut, like Keras `pooling='avg'`. */
  pooling?: Pooling;
  /** For user models that do not record theirs; zoo bases carry their own. */
  preprocessing?: Partial<Preprocessing>;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export function isBaseName(ref: string): ref is BaseName {
  return (BASE_NAMES as readonly string[]).includes(ref);
}

/** Where the committed mnist_cnn model lives (same relative path from src/ and dist/). */
export const MNIST_CNN_DIR = fileURLToPath(new URL('../../models/mnist-cnn/', import.meta.url));

/**
 * Loads a base to predict with: a zoo name (`mobilenet_v2`, `inception_v3`, `mnist_cnn`,
 * `mobilenet_v2_mid`), `file:path/to/model.json` (or its directory) relative to `baseDir`, or an
 * `https://…/model.json` pinned by `sha256`; a tfjs layers model or a graph model.
 */
export async function loadFrozenBase(tf: Tf, ref: string, options: LoadBaseOptions): Promise<BaseModel | GraphBase> {
  const files = await modelFilesFor(ref, options);
  return isGraphModel(files.json) ? loadGraphBase(tf, ref, files, options) : loadLayersBase(tf, ref, files, options);
}

/** Loads a base that can be joined to a head and trained: a layers model (see loadFrozenBase). */
export async function loadBase(tf: Tf, ref: string, options: LoadBaseOptions): Promise<BaseModel> {
  const files = await modelFilesFor(ref, options);
  if (isGraphModel(files.json)) throw new RuntimeUserError(graphCannotTrain(ref));
  return loadLayersBase(tf, ref, files, options);
}

export function graphCannotTrain(ref: string): string {
  return `the base ${ref} is a TensorFlow.js graph model, and graph models cannot be trained (their weights are graph constants): use a layers model as the base to unfreeze or fine-tune it`;
}

async function loadLayersBase(tf: Tf, ref: string, files: ModelFiles, options: LoadBaseOptions): Promise<BaseModel> {
  const descriptor = isBaseName(ref) ? BASES[ref] : undefined;
  const inputSize = options.inputSize ?? descriptor?.nativeInputSize;
  if (descriptor && inputSize !== undefined) checkInputSize(descriptor, inputSize, options);
  let topology: object = files.json.modelTopology;
  const layer = options.layer ?? (options.includeTop === true || !descriptor ? undefined : descriptor.topLayer);
  if (layer !== undefined) topology = cutAt(topology, layer);
  if (options.inputSize !== undefined) topology = setInputSize(topology, options.inputSize);
  const preprocessing = preprocessingFor(topology, files, descriptor, options);
  const model = await loadTopology(tf, topology, files);
  return new BaseModel(tf, model, {
    source: ref,
    layer: layer ?? outputLayerName(topology),
    pooling: options.pooling ?? 'avg',
    preprocessing,
  });
}

/** A graph model run from its input to `layer` (a node; default: the zoo's cut, else the model's output). */
async function loadGraphBase(tf: Tf, ref: string, files: ModelFiles, options: LoadBaseOptions): Promise<GraphBase> {
  const descriptor = isBaseName(ref) ? BASES[ref] : undefined;
  const inputSize = options.inputSize ?? descriptor?.nativeInputSize;
  if (descriptor && inputSize !== undefined) checkInputSize(descriptor, inputSize, options);
  const json = options.inputSize === undefined ? files.json : withGraphInputSize(files.json, options.inputSize);
  const [height, , channels] = graphInputShape(json);
  const preprocessing = mergePreprocessing(height ?? null, channels ?? null, files, descriptor, options);
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifactsFromModelFiles({ json, weightData: files.weightData })));
  const layerName = options.layer ?? (options.includeTop === true || !descriptor ? undefined : descriptor.topLayer);
  try {
    const layer = layerName === undefined ? model.outputNodes[0]! : resolveGraphNode(json, layerName);
    return new GraphBase(tf, model, { json, weightData: files.weightData }, { source: ref, layer, pooling: options.pooling ?? 'avg', preprocessing });
  } catch (error) {
    model.dispose();
    throw error;
  }
}

async function modelFilesFor(ref: string, options: LoadBaseOptions): Promise<ModelFiles> {
  if (ref === 'mnist_cnn') return readModelFiles(MNIST_CNN_DIR);
  if (isBaseName(ref)) return nsfwjsModelFiles(ref as NsfwjsModel, options.cacheDir);
  if (ref.startsWith('file:')) return readModelFiles(path.resolve(options.baseDir ?? process.cwd(), ref.slice('file:'.length)));
  if (/^https?:\/\//.test(ref)) {
    if (!options.sha256) throw new RuntimeUserError(`${ref}: a model URL needs its sha256 pinned (of model.json and its weight files: cat model.json <shards in manifest order> | sha256sum)`);
    const jsonPath = await downloadModel(ref, { sha256: options.sha256, cacheDir: options.cacheDir, ...opt(options) });
    return readModelFiles(jsonPath);
  }
  throw new RuntimeUserError(`unknown base "${ref}": use ${BASE_NAMES.join(', ')}, file:path/to/model.json or https://…/model.json`);
}

function opt(options: LoadBaseOptions): { signal?: AbortSignal; log?: (line: string) => void } {
  return { ...(options.signal ? { signal: options.signal } : {}), ...(options.log ? { log: options.log } : {}) };
}

function checkInputSize(descriptor: BaseDescriptor, size: number, options: LoadBaseOptions): void {
  if (!Number.isInteger(size) || size < descriptor.minInputSize || size > 1024) {
    throw new RuntimeUserError(`input_size ${size} does not suit ${descriptor.name}: use an integer from ${descriptor.minInputSize} to 1024`);
  }
  if (options.includeTop && options.layer === undefined && descriptor.headNeedsNativeSize && size !== descriptor.nativeInputSize) {
    throw new RuntimeUserError(`${descriptor.name} with include_top needs input_size ${descriptor.nativeInputSize}; its classifier cannot take ${size}`);
  }
}

/** Zoo bases carry theirs; a model we saved records its own; otherwise the options, then [0, 1]. */
function preprocessingFor(topology: object, files: ModelFiles, descriptor: BaseDescriptor | undefined, options: LoadBaseOptions): Preprocessing {
  const [height, , channels] = inputShape(topology);
  return mergePreprocessing(height ?? null, channels ?? null, files, descriptor, options);
}

function mergePreprocessing(height: number | null, channels: number | null, files: ModelFiles, descriptor: BaseDescriptor | undefined, options: LoadBaseOptions): Preprocessing {
  const recorded = (files.json.userDefinedMetadata?.['headstart'] as { preprocessing?: unknown } | undefined)?.preprocessing;
  const base = descriptor?.preprocessing ?? (isPreprocessing(recorded) ? recorded : undefined);
  const merged = { range: [0, 1] as [number, number], resize: 'bilinear' as const, ...base, ...(descriptor ? {} : options.preprocessing) };
  const inputSize = options.inputSize ?? height ?? merged.inputSize;
  const channelCount = channels ?? merged.channels;
  if (inputSize == null) throw new RuntimeUserError('the model does not fix its input size: set input_size');
  if (channelCount !== 1 && channelCount !== 3) throw new RuntimeUserError(`the model takes ${channelCount} channels; only 1 or 3 are supported`);
  return { ...merged, inputSize, channels: channelCount };
}

/**
 * Loads an edited topology with the file's weights. `strict: false` lets the weights of cut-off
 * layers be ignored; every weight the loaded model does have must then be present in the file, or
 * it would silently keep its random initial value.
 */
async function loadTopology(tf: Tf, topology: object, files: ModelFiles): Promise<Tfjs.LayersModel> {
  const weightSpecs = files.json.weightsManifest.flatMap((group) => group.weights);
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: topology, weightSpecs, weightData: files.weightData }), { strict: false });
  const available = new Set(weightSpecs.map((spec) => spec.name));
  const missing = model.weights.map((w) => w.originalName).filter((name) => !available.has(name));
  if (missing.length > 0) {
    model.dispose();
    throw new RuntimeUserError(`the model file has no values for ${missing.length} weights of the loaded layers (e.g. ${missing.slice(0, 3).join(', ')})`);
  }
  return model;
}
