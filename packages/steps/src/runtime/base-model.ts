import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import { RuntimeUserError } from './errors.js';
import type { Preprocessing } from './preprocessing.js';

type LayersModel = Tfjs.LayersModel;
export type Pooling = 'avg' | 'none';

/** What a base is, for run records: enough to rebuild it and to know how to feed it. */
export interface BaseInfo {
  /** `mobilenet_v2`, `file:models/x/model.json`, `https://…/model.json`. */
  source: string;
  /** The layer the trunk ends at (the cut point). */
  layer: string;
  pooling: Pooling;
  /** Shape of one feature vector (or map, without pooling). */
  featureShape: number[];
  preprocessing: Preprocessing;
}

/**
 * A pretrained base that only predicts: what extract-features, evaluate and predict need of one,
 * whether it is a tfjs layers model (BaseModel) or a graph model (GraphBase, which cannot be trained).
 */
export interface FrozenBase {
  readonly kind: 'layers' | 'graph';
  readonly info: BaseInfo;
  readonly preprocessing: Preprocessing;
  /** Features of a preprocessed batch, computed in chunks of `batchSize`; the caller owns the result. */
  predict(input: Tfjs.Tensor, batchSize?: number): Tfjs.Tensor;
  dispose(): void;
}

/**
 * Owns one loaded model (the trunk: input → cut layer) and hands out views of it. A view made with
 * `tf.model({inputs, outputs: layer.output})` shares its layers with the trunk, and tfjs's
 * `dispose()` on a view disposes those shared weights. So views here cannot dispose anything:
 * their `dispose()` does nothing, and the trunk's weights go exactly once, in `BaseModel.dispose()`.
 */
export class BaseModel implements FrozenBase {
  readonly kind = 'layers';
  private released = false;
  private trunkView: LayersModel | undefined;
  /** The trunk followed by the pooling: input → feature vector. A view; do not dispose it. */
  readonly model: LayersModel;
  readonly info: BaseInfo;

  constructor(
    private readonly tf: Tf,
    private readonly owned: LayersModel,
    info: Omit<BaseInfo, 'featureShape'>,
  ) {
    const output = this.singleOutput(owned);
    const pooling = output.rank === 4 ? info.pooling : 'none'; // only feature maps can be pooled
    this.model = this.makeView(output, pooling);
    this.info = { ...info, pooling, featureShape: (this.model.outputs[0]?.shape ?? []).slice(1) as number[] };
  }

  get preprocessing(): Preprocessing {
    return this.info.preprocessing;
  }

  /** The unpooled trunk (input → cut layer). A view; do not dispose it. */
  get trunk(): LayersModel {
    this.assertLive();
    this.trunkView ??= this.makeView(this.singleOutput(this.owned), 'none');
    return this.trunkView;
  }

  get disposed(): boolean {
    return this.released;
  }

  /** A model from the input to `layerName` of the trunk, pooled or not. Shares the trunk's weights. */
  view(layerName: string, pooling: Pooling = 'avg'): LayersModel {
    this.assertLive();
    if (!this.owned.layers.some((layer) => layer.name === layerName)) {
      throw new RuntimeUserError(`the base has no layer named "${layerName}" before its cut at ${this.info.layer}`);
    }
    const output = this.owned.getLayer(layerName).output;
    if (Array.isArray(output)) throw new Error(`layer ${layerName} has several outputs`);
    return this.makeView(output, pooling);
  }

  /** Features of a preprocessed batch, computed in chunks of `batchSize`; the caller owns the result. */
  predict(input: Tfjs.Tensor, batchSize = 32): Tfjs.Tensor {
    this.assertLive();
    return this.model.predict(input, { batchSize }) as Tfjs.Tensor;
  }

  /** Disposes the trunk's weights. Idempotent; views become unusable. */
  dispose(): void {
    if (this.released) return;
    this.released = true;
    this.owned.dispose();
  }

  private makeView(output: Tfjs.SymbolicTensor, pooling: Pooling): LayersModel {
    const outputs = pooling === 'avg'
      ? (this.tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(output) as Tfjs.SymbolicTensor)
      : output;
    const view = this.tf.model({ inputs: this.owned.inputs, outputs });
    view.dispose = () => ({ refCountAfterDispose: this.released ? 0 : 1, numDisposedVariables: 0 });
    return view;
  }

  private singleOutput(model: LayersModel): Tfjs.SymbolicTensor {
    const [output, ...more] = model.outputs;
    if (!output || more.length > 0) throw new Error('a base must have exactly one output');
    return output;
  }

  private assertLive(): void {
    if (this.released) throw new Error('this BaseModel has been disposed');
  }
}

