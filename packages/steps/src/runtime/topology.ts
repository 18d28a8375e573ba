import { RuntimeUserError } from './errors.js';

/**
 * Edits of a Keras/tfjs layers topology (the `modelTopology` of a model.json) made BEFORE loading:
 * cutting a model at a layer and changing its input size cost nothing there, whereas after loading a
 * cut shares layers with its parent and a resized input means rebuilding every layer.
 */

type Json = Record<string, unknown>;
type InboundRef = [string, number, number, Json?];

export interface LayerJson {
  class_name: string;
  name?: string;
  config: Json & { name: string };
  inbound_nodes?: InboundRef[][];
}

interface ModelConfig {
  class_name: string;
  config: Json & { layers: LayerJson[]; input_layers?: unknown; output_layers?: unknown };
}

/** A deep copy, so edits never touch the caller's (possibly shared, cached) object. */
export function cloneTopology<T>(topology: T): T {
  return structuredClone(topology);
}

/** Keras files wrap the model in `model_config`; tfjs's own saves do not. */
export function modelConfig(topology: object): ModelConfig {
  const t = topology as Json;
  const config = (t['model_config'] ?? t) as Partial<ModelConfig>;
  if (typeof config.class_name !== 'string' || !Array.isArray(config.config?.layers)) {
    throw new RuntimeUserError('model.json has no layers topology (is it a graph model? only layers models are supported)');
  }
  return config as ModelConfig;
}

export function layerNames(topology: object): string[] {
  return modelConfig(topology).config.layers.map((layer) => layer.config.name);
}

export function isSequential(topology: object): boolean {
  return modelConfig(topology).class_name === 'Sequential';
}

/** Returns a copy that ends at `layerName`, keeping only the layers it depends on. */
export function cutAt(topology: object, layerName: string): object {
  const copy = cloneTopology(topology);
  const config = modelConfig(copy);
  const layers = config.config.layers;
  const index = layers.findIndex((layer) => layer.config.name === layerName);
  if (index < 0) throw unknownLayer(layerName, layers);
  if (isSequential(copy)) {
    config.config.layers = layers.slice(0, index + 1);
    return copy;
  }
  const keep = ancestors(layers, layerName);
  config.config.layers = layers.filter((layer) => keep.has(layer.config.name));
  config.config.output_layers = [[layerName, 0, 0]];
  return copy;
}

/** Appends a GlobalAveragePooling2D after the model's (single) output, like Keras `pooling='avg'`. */
export function appendGlobalAveragePooling(topology: object, name = 'avg_pool'): object {
  const copy = cloneTopology(topology);
  const config = modelConfig(copy);
  const layer: LayerJson = {
    class_name: 'GlobalAveragePooling2D',
    config: { name, trainable: true, dtype: 'float32', data_format: 'channels_last' },
  };
  if (isSequential(copy)) {
    config.config.layers.push(layer);
    return copy;
  }
  const output = singleOutput(config);
  layer.inbound_nodes = [[[output, 0, 0, {}]]];
  config.config.layers.push(layer);
  config.config.output_layers = [[name, 0, 0]];
  return copy;
}

/** Sets every input to `size`×`size` (channels kept). Weights do not depend on it in a conv trunk. */
export function setInputSize(topology: object, size: number): object {
  const copy = cloneTopology(topology);
  const config = modelConfig(copy);
  const inputs = isSequential(copy)
    ? config.config.layers.slice(0, 1)
    : config.config.layers.filter((layer) => layer.class_name === 'InputLayer');
  for (const layer of inputs) {
    const shape = layer.config['batch_input_shape'] as (number | null)[] | undefined;
    if (!shape || shape.length !== 4) throw new RuntimeUserError(`input ${layer.config.name} is not an image input (shape ${JSON.stringify(shape)})`);
    layer.config['batch_input_shape'] = [shape[0] ?? null, size, size, shape[3] ?? null];
  }
  return copy;
}

/** The first input's [height, width, channels]. */
export function inputShape(topology: object): [number | null, number | null, number | null] {
  const config = modelConfig(topology);
  const first = isSequential(topology)
    ? config.config.layers[0]
    : config.config.layers.find((layer) => layer.class_name === 'InputLayer');
  const shape = first?.config['batch_input_shape'] as (number | null)[] | undefined;
  if (!shape || shape.length < 2) throw new RuntimeUserError('model.json declares no input shape');
  return [shape[1] ?? null, shape[2] ?? null, shape[3] ?? null];
}

export function outputLayerName(topology: object): string {
  const config = modelConfig(topology);
  if (isSequential(topology)) {
    const last = config.config.layers.at(-1);
    if (!last) throw new RuntimeUserError('model.json has no layers');
    return last.config.name;
  }
  return singleOutput(config);
}

function singleOutput(config: ModelConfig): string {
  const outputs = config.config.output_layers as InboundRef[] | undefined;
  const first = outputs?.[0];
  if (!outputs || outputs.length !== 1 || !first) throw new RuntimeUserError('only models with exactly one output can be cut or pooled');
  return first[0];
}

function ancestors(layers: LayerJson[], name: string): Set<string> {
  const byName = new Map(layers.map((layer) => [layer.config.name, layer]));
  const seen = new Set<string>();
  const stack = [name];
  while (stack.length > 0) {
    const current = stack.pop() as string;
    if (seen.has(current)) continue;
    seen.add(current);
    for (const node of byName.get(current)?.inbound_nodes ?? []) {
      for (const [inbound] of node) stack.push(inbound);
    }
  }
  return seen;
}

function unknownLayer(name: string, layers: LayerJson[]): RuntimeUserError {
  const names = layers.map((layer) => layer.config.name);
  const stem = name.replace(/_[a-z]+$/, '');
  const near = names.filter((n) => n.startsWith(stem) || n.includes(name)).slice(0, 6);
  const hint = near.length > 0 ? `; similar: ${near.join(', ')}` : `; it has ${names.length} layers, e.g. ${names.slice(-4).join(', ')}`;
  return new RuntimeUserError(`the model has no layer named "${name}"${hint}`);
}
