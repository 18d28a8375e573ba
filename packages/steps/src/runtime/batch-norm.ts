import type * as Tfjs from '@tensorflow/tfjs';

/**
 * tfjs-layers' BatchNormalization picks training vs inference from the `training` call argument
 * alone (`kwargs['training']`, true inside `fit`): with `trainable = false` it still normalises with
 * batch statistics and updates its moving mean and variance. Keras does otherwise, and so do we:
 *
 * - `'frozen'`: a BN layer whose `trainable` is false runs in inference mode (Keras 2.1.3+ / TF2
 *   semantics for `trainable = false`); a trainable one trains as usual.
 * - `'always'` (the default): every BN layer runs in inference mode, trainable or not. That is
 *   Keras's fine-tuning rule (call the base with `training=False`): unfreezing a block trains its
 *   gamma and beta, but its moving statistics stay those learnt on the large dataset, which a
 *   small one and small batches would wreck.
 *
 * The policy is read on every call, so `trainable` may change after patching (recompile the model
 * then, as Keras requires). Patching is per layer object: do it again after loading a model.
 */
export type BatchNormPolicy = 'frozen' | 'always';

type CallArgs = Record<string, unknown>;
type Call = (inputs: Tfjs.Tensor | Tfjs.Tensor[], kwargs: CallArgs) => Tfjs.Tensor | Tfjs.Tensor[];

const policies = new WeakMap<Tfjs.layers.Layer, BatchNormPolicy>();

/** Applies the policy to every BatchNormalization layer in `model`, nested models included. Returns how many. */
export function freezeBatchNorm(model: Tfjs.LayersModel, policy: BatchNormPolicy = 'always'): number {
  let count = 0;
  for (const layer of allLayers(model)) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    if (!policies.has(layer)) patch(layer);
    policies.set(layer, policy);
    count += 1;
  }
  return count;
}

/** Whether a BN layer would normalise with batch statistics when called with `training`. */
export function batchNormTrains(layer: Tfjs.layers.Layer, training: boolean): boolean {
  const policy = policies.get(layer);
  if (!training || policy === 'always') return false;
  return policy === 'frozen' ? layer.trainable : true;
}

function patch(layer: Tfjs.layers.Layer): void {
  const original = (layer as unknown as { call: Call }).call.bind(layer);
  const patched: Call = (inputs, kwargs) => {
    const training = batchNormTrains(layer, kwargs['training'] === true);
    return original(inputs, { ...kwargs, training });
  };
  (layer as unknown as { call: Call }).call = patched;
}

function* allLayers(model: Tfjs.LayersModel | Tfjs.layers.Layer): Generator<Tfjs.layers.Layer> {
  for (const layer of (model as Tfjs.LayersModel).layers ?? []) {
    yield layer;
    if ('layers' in layer) yield* allLayers(layer as unknown as Tfjs.LayersModel);
  }
}
