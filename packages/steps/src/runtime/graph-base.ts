import type * as Tfjs from '@tensorflow/tfjs';
import { didYouMean } from '@headstart/core';
import type { Tf } from './backend.js';
import type { BaseInfo, FrozenBase } from './base-model.js';
import { RuntimeUserError } from './errors.js';
import type { ModelFiles } from './model-io.js';
import type { Preprocessing } from './preprocessing.js';

/**
 * tfjs graph models (`format: graph-model`, a TensorFlow GraphDef as JSON: what TF Hub and Kaggle
 * feature-vector models ship as) hold their weights as graph constants, so they can only predict.
 * A GraphBase runs one from its image input to a chosen node, then pools like a layers base does.
 */

interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, { shape?: { dim?: Array<{ size?: string | number }> } } & Record<string, unknown>>;
}

interface GraphDef {
  node: GraphNode[];
}

export function isGraphModel(json: Tfjs.io.ModelJSON): boolean {
  return json.format === 'graph-model' || Array.isArray((json.modelTopology as { node?: unknown } | undefined)?.node);
}

function graphDef(json: Tfjs.io.ModelJSON): GraphDef {
  const def = json.modelTopology as Partial<GraphDef> | undefined;
  if (!Array.isArray(def?.node)) throw new RuntimeUserError('model.json says graph-model but its modelTopology has no nodes');
  return def as GraphDef;
}

/** The graph's one Placeholder: a base takes a single batch of images. */
function inputNode(def: GraphDef): GraphNode {
  const placeholders = def.node.filter((node) => node.op === 'Placeholder');
  if (placeholders.length !== 1) {
    throw new RuntimeUserError(`the graph model has ${placeholders.length} inputs (${placeholders.map((n) => n.name).join(', ')}); a base takes one batch of images`);
  }
  return placeholders[0]!;
}

/** The input's [height, width, channels]; null where the graph leaves a size open. */
export function graphInputShape(json: Tfjs.io.ModelJSON): Array<number | null> {
  const node = inputNode(graphDef(json));
  const dims = node.attr?.['shape']?.shape?.dim ?? [];
  if (dims.length !== 4) throw new RuntimeUserError(`the graph model's input ${node.name} has rank ${dims.length}; a base takes images [batch, height, width, channels]`);
  return dims.slice(1).map((dim) => {
    const size = Number(dim.size ?? -1);
    return size > 0 ? size : null;
  });
}

/** A copy whose input takes `size`×`size` images (tfjs checks a fed batch against the Placeholder's shape). */
export function withGraphInputSize(json: Tfjs.io.ModelJSON, size: number): Tfjs.io.ModelJSON {
  const copy = { ...json, modelTopology: structuredClone(json.modelTopology) };
  const dims = inputNode(graphDef(copy)).attr?.['shape']?.shape?.dim;
  if (dims?.length === 4) {
    dims[1] = { size: String(size) };
    dims[2] = { size: String(size) };
  }
  return copy;
}

/**
 * The full name of the node `name` means: itself, or the one node whose name ends with `/name`
 * (graph names carry long scopes, e.g. `StatefulPartitionedCall/…/MobilenetV2/Conv_1/Relu6`).
 */
export function resolveGraphNode(json: Tfjs.io.ModelJSON, name: string): string {
  const names = graphDef(json).node.map((node) => node.name);
  if (names.includes(name)) return name;
  const matches = names.filter((candidate) => candidate.endsWith(`/${name}`));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new RuntimeUserError(`"${name}" ends ${matches.length} node names of the graph model (${matches.slice(0, 3).join(', ')}…): give more of its path`);
  throw new RuntimeUserError(`the graph model has no node "${name}"${didYouMean(name, names)}`);
}

export class GraphBase implements FrozenBase {
  readonly kind = 'graph';
  readonly info: BaseInfo;
  private released = false;

  /** `files`: the model as it runs here (its input resized): what a model artifact and an export copy. */
  constructor(
    private readonly tf: Tf,
    private readonly model: Tfjs.GraphModel,
    readonly files: ModelFiles,
    info: Omit<BaseInfo, 'featureShape'>,
  ) {
    const { inputSize, channels } = info.preprocessing;
    const shape = this.probe(info.layer, [1, inputSize, inputSize, channels]);
    const pooling = shape.length === 4 ? info.pooling : 'none'; // only feature maps can be pooled
    this.info = { ...info, pooling, featureShape: pooling === 'avg' ? shape.slice(3) : shape.slice(1) };
  }

  get preprocessing(): Preprocessing {
    return this.info.preprocessing;
  }

  get disposed(): boolean {
    return this.released;
  }

  predict(input: Tfjs.Tensor, batchSize = 32): Tfjs.Tensor {
    if (this.released) throw new Error('this GraphBase has been disposed');
    const count = input.shape[0] ?? 0;
    if (count <= batchSize) return this.tf.tidy(() => this.features(input));
    return this.tf.tidy(() => {
      const chunks: Tfjs.Tensor[] = [];
      for (let start = 0; start < count; start += batchSize) chunks.push(this.features(input.slice(start, Math.min(batchSize, count - start))));
      return this.tf.concat(chunks);
    });
  }

  dispose(): void {
    if (this.released) return;
    this.released = true;
    this.model.dispose();
  }

  private features(input: Tfjs.Tensor): Tfjs.Tensor {
    const output = this.model.execute(input, this.info.layer) as Tfjs.Tensor;
    return this.info.pooling === 'avg' ? this.tf.mean(output, [1, 2]) : output;
  }

  /** The node's output shape on a batch of zeros; a graph that cannot compute it is the user's to fix. */
  private probe(layer: string, inputShape: number[]): number[] {
    try {
      return this.tf.tidy(() => (this.model.execute(this.tf.zeros(inputShape), layer) as Tfjs.Tensor).shape);
    } catch (error) {
      throw new RuntimeUserError(`the graph model cannot compute ${layer} on ${inputShape[1]}×${inputShape[2]} images (${(error as Error).message.split('\n')[0]})`);
    }
  }
}
