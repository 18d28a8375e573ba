import type { LayersModel, Optimizer, Tensor, Variable } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { describeRates, layerRates, variableMultipliers } from '../../src/ml/layer-rates.js';
import { applyGradients, setLearningRateMultipliers } from '../../src/runtime/fused-adam.js';
import { loadBackend } from '../../src/runtime/index.js';

const { tf } = await loadBackend('wasm');

/** MobileNetV2-like names: two blocks, the top conv with its BN, and a two-layer head. */
function namedModel(): LayersModel {
  const dense = (name: string) => tf.layers.dense({ units: 3, name, kernelInitializer: tf.initializers.glorotUniform({ seed: name.length }) });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 3, inputShape: [4], name: 'block_1_expand', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.batchNormalization({ name: 'block_1_expand_BN' }),
      dense('block_2_project'),
      dense('Conv_1'),
      tf.layers.batchNormalization({ name: 'Conv_1_bn' }),
      dense('head_dense_0'),
      tf.layers.dense({ units: 2, activation: 'softmax', name: 'head_output', kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

const HEAD = ['head_dense_0', 'head_output'];
const none = { layer_decay: null, lr_mult: null, optimizer: 'adam' };
const layerNames = (groups: { layers: { name: string }[] }[]) => groups.map((group) => group.layers.map((layer) => layer.name));

describe('layerRates', () => {
  it('layer_decay: the head ×1, then each block from the top × decay^k (a BN joins the layer below it)', () => {
    const model = namedModel();
    const groups = layerRates(model, { ...none, layer_decay: 0.5 }, HEAD)!;
    expect(describeRates(groups)).toBe('lr multipliers: head ×1, Conv_1 ×0.5, block_2 ×0.25, block_1 ×0.125');
    expect(layerNames(groups)).toEqual([HEAD, ['Conv_1', 'Conv_1_bn'], ['block_2_project'], ['block_1_expand', 'block_1_expand_BN']]);
    const multipliers = variableMultipliers(groups);
    expect(multipliers.size).toBe(model.trainableWeights.length);
    expect(multipliers.get((model.getLayer('block_1_expand_BN').trainableWeights[0]!.read() as Variable).name)).toBe(0.125);
    model.dispose();
  });

  it('layer_decay counts only trainable layers', () => {
    const model = namedModel();
    model.getLayer('block_1_expand').trainable = false;
    model.getLayer('block_1_expand_BN').trainable = false;
    expect(describeRates(layerRates(model, { ...none, layer_decay: 0.5 }, HEAD)!)).toBe('lr multipliers: head ×1, Conv_1 ×0.5, block_2 ×0.25');
    model.dispose();
  });

  it('lr_mult: layers from each from_layer up to the next entry get its mult, those below the first ×1', () => {
    const model = namedModel();
    const groups = layerRates(model, { ...none, lr_mult: [{ from_layer: 'head_dense_0', mult: 1 }, { from_layer: 'block_2_project', mult: 0.5 }] }, HEAD)!;
    expect(describeRates(groups)).toBe('lr multipliers: below the first entry ×1, from block_2_project ×0.5, from head_dense_0 ×1');
    expect(layerNames(groups)).toEqual([['block_1_expand', 'block_1_expand_BN'], ['block_2_project', 'Conv_1', 'Conv_1_bn'], HEAD]);
    model.dispose();
  });

  it.each([
    [{ lr_mult: [{ from_layer: 'block_9_expand', mult: 0.5 }] }, 'lr_mult: the model has no layer "block_9_expand" at or above its first trainable layer (block_1_expand)'],
    [{ layer_decay: 0.7, lr_mult: [{ from_layer: 'Conv_1', mult: 0.5 }] }, 'give layer_decay or lr_mult, not both'],
    [{ layer_decay: 0.7, optimizer: 'sgd' }, 'layer_decay and lr_mult need optimizer: adam, not sgd'],
  ])('refuses %j: %s', (params, message) => {
    const model = namedModel();
    expect(() => layerRates(model, { ...none, ...params }, HEAD)).toThrow(message);
    model.dispose();
  });

  it('neither set: no multipliers', () => {
    const model = namedModel();
    expect(layerRates(model, none, HEAD)).toBeUndefined();
    model.dispose();
  });
});

const bits = (tensor: Tensor) => Array.from(new Uint32Array((tensor.dataSync() as Float32Array).slice().buffer));

/** Each weight's change over one step of tfjs `fit` on a seeded batch; `multipliers` by layer name. */
async function fitDeltas(multipliers?: Record<string, number>): Promise<number[][]> {
  const model = namedModel();
  if (multipliers) {
    const groups = Object.entries(multipliers).map(([name, mult]) => ({ name, mult, layers: [model.getLayer(name)] }));
    setLearningRateMultipliers(tf, model.optimizer, variableMultipliers(groups));
  }
  const before = model.getWeights().map((w) => w.dataSync().slice());
  const [x, y] = [tf.randomNormal([8, 4], 0, 1, 'float32', 3), tf.oneHot(tf.tensor1d([0, 1, 1, 0, 1, 0, 0, 1], 'int32'), 2).toFloat()];
  await model.fit(x, y, { batchSize: 8, epochs: 1, shuffle: false, verbose: 0 });
  const deltas = model.getWeights().map((w, i) => Array.from(w.dataSync(), (value, j) => value - before[i]![j]!));
  tf.dispose([x, y]);
  model.dispose();
  return deltas;
}

describe('per-variable learning rates inside Adam', () => {
  it('in tfjs fit: multipliers of 1 change no bit, ×0.5 halves a layer\'s step', async () => {
    const plain = await fitDeltas();
    expect(await fitDeltas({ Conv_1: 1, head_output: 1 })).toEqual(plain);
    const halved = await fitDeltas({ Conv_1: 0.5 });
    const model = namedModel();
    const kernelIndex = model.weights.indexOf(model.getLayer('Conv_1').weights[0]!); // getWeights() order: the trainable ones first
    model.dispose();
    halved[kernelIndex]!.forEach((delta, j) => expect(delta).toBeCloseTo(plain[kernelIndex]![j]! / 2, 4));
    expect(halved[0]).toEqual(plain[0]);
  });

  it('without the SIMD kernel (the cpu backend), multipliers of 1 give tfjs-core Adam\'s bits, and ×0.25 a quarter step', async () => {
    await tf.setBackend('cpu');
    try {
      const step = (optimizer: Optimizer, variables: Variable[]) => applyGradients(tf, optimizer, Object.fromEntries(variables.map((v, i) => [v.name, tf.fill(v.shape, i % 2 === 0 ? 0.3 : -2e-6)])));
      const make = (prefix: string) => [tf.variable(tf.ones([5]), true, `${prefix}/a`), tf.variable(tf.ones([2, 3]), true, `${prefix}/b`)];
      const [stock, ones, quarter] = [make('stock'), make('ones'), make('quarter')];
      const optimizers = [tf.train.adam(0.01), tf.train.adam(0.01), tf.train.adam(0.01)];
      setLearningRateMultipliers(tf, optimizers[1]!, new Map(ones.map((v) => [v.name, 1])));
      setLearningRateMultipliers(tf, optimizers[2]!, new Map([[quarter[0]!.name, 0.25]]));
      for (let i = 0; i < 3; i++) [stock, ones, quarter].forEach((variables, k) => step(optimizers[k]!, variables));
      ones.forEach((variable, i) => expect(bits(variable)).toEqual(bits(stock[i]!)));
      expect(bits(quarter[1]!)).toEqual(bits(stock[1]!));
      expect(1 - quarter[0]!.dataSync()[0]!).toBeCloseTo((1 - stock[0]!.dataSync()[0]!) / 4, 6);
      tf.dispose([...stock, ...ones, ...quarter]);
    } finally {
      await tf.setBackend('wasm');
    }
  });
});
