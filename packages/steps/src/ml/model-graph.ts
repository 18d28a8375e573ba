import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from '../runtime/backend.js';

type Layer = Tfjs.layers.Layer;
type SymbolicTensor = Tfjs.SymbolicTensor;

interface InboundNode {
  inputTensors: SymbolicTensor[];
}

/** Every layer of `model`, those of nested models included. */
export function* allLayers(model: Tfjs.LayersModel | Tfjs.layers.Layer): Generator<Layer> {
  for (const layer of (model as Tfjs.LayersModel).layers ?? []) {
    yield layer;
    if ('layers' in layer) yield* allLayers(layer as unknown as Tfjs.LayersModel);
  }
}

/** The layers of a model in topological order, without its InputLayers. */
export function computeLayers(model: Tfjs.LayersModel): Layer[] {
  return model.layers.filter((layer) => layer.getClassName() !== 'InputLayer');
}

/** The index (in `computeLayers`) of the first trainable layer, or -1. */
export function firstTrainableIndex(model: Tfjs.LayersModel): number {
  return computeLayers(model).findIndex((layer) => layer.trainable && layer.countParams() > 0);
}

export interface SplitModel {
  /** Input → boundary tensor: the frozen part. A view sharing the model's layers; never dispose it. */
  lower: Tfjs.LayersModel;
  /** Boundary → output: the part that trains. A view sharing the model's layers; never dispose it. */
  upper: Tfjs.LayersModel;
  boundaryShape: number[];
}

/**
 * Splits a model at the input of its first trainable layer, when that one tensor separates everything
 * below from everything above (true of MobileNetV2 between blocks, where no skip connection crosses).
 * The upper part re-applies the same layer objects to a new input, so training it trains the model.
 * Returns undefined when some upper layer also reads a tensor from below the boundary.
 */
export function splitAtFirstTrainable(tf: Tf, model: Tfjs.LayersModel): SplitModel | undefined {
  const layers = computeLayers(model);
  const first = firstTrainableIndex(model);
  if (first <= 0) return undefined;
  const firstInputs = inboundTensors(layers[first]!);
  if (firstInputs.length !== 1) return undefined;
  const boundary = firstInputs[0]!;
  const input = tf.input({ shape: boundary.shape.slice(1) as number[], name: `${boundary.name.replace(/[/:]/g, '_')}_cached` });
  const mapped = new Map<string, SymbolicTensor>([[tensorId(boundary), input]]);
  for (const layer of layers.slice(first)) {
    const inputs = inboundTensors(layer).map((tensor) => mapped.get(tensorId(tensor)));
    if (inputs.some((tensor) => tensor === undefined)) return undefined;
    const original = layer.getOutputAt(0) as SymbolicTensor; // before apply() adds a second node
    const output = layer.apply(inputs.length === 1 ? inputs[0]! : (inputs as SymbolicTensor[])) as SymbolicTensor;
    mapped.set(tensorId(original), output);
  }
  const output = mapped.get(tensorId(model.outputs[0]!));
  if (!output) return undefined;
  return {
    lower: tf.model({ inputs: model.inputs, outputs: boundary }),
    upper: tf.model({ inputs: input, outputs: output }),
    boundaryShape: boundary.shape.slice(1) as number[],
  };
}

function inboundTensors(layer: Layer): SymbolicTensor[] {
  const nodes = (layer as unknown as { inboundNodes: InboundNode[] }).inboundNodes;
  return nodes[0]?.inputTensors ?? [];
}

function tensorId(tensor: SymbolicTensor): string {
  return `${tensor.id}`;
}
