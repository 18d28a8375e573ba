import type { Tensor, Variable } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { applyGradients } from '../../src/runtime/fused-adam.js';
import { loadBackend } from '../../src/runtime/index.js';
import { simdFor } from '../../src/runtime/simd-kernels.js';

const { tf } = await loadBackend('wasm');

/** Shapes whose sizes leave 0, 1, 2 and 3 values after the SIMD vectors of 4. */
const SHAPES = [[4, 6], [5], [3, 2, 1], [7]];

/** Variables with the same start values for two optimizers to train. */
function makeVariables(prefix: string): Variable[] {
  return SHAPES.map((shape, i) => tf.variable(tf.randomNormal(shape, 0, 1, 'float32', i + 1), true, `${prefix}/w${i}`));
}

/** Gradients for step `step`: seeded (not 0, which tfjs takes as unseeded), some near zero (where Adam's result is most sensitive to rounding). */
function gradients(variables: Variable[], step: number): Record<string, Tensor> {
  const scaled = variables.map((variable, i) => tf.tidy(() => tf.mul(tf.randomNormal(variable.shape, 0, 1, 'float32', 100 * step + i + 1), i % 2 === 0 ? 1 : 1e-6)));
  return Object.fromEntries(variables.map((variable, i) => [variable.name, scaled[i]!]));
}

const bits = (tensor: Tensor) => Array.from(new Uint32Array((tensor.dataSync() as Float32Array).slice().buffer));

describe('fused Adam on wasm', () => {
  it('is loaded with the wasm backend', () => {
    expect(simdFor(tf)).toBeDefined();
  });

  it('gives the same bits as tfjs-core’s Adam, for the weights and the optimizer’s moments', () => {
    const [stock, fused] = [makeVariables('stock'), makeVariables('fused')];
    const [stockAdam, fusedAdam] = [tf.train.adam(3e-3, 0.9, 0.999), tf.train.adam(3e-3, 0.9, 0.999)];
    for (let step = 0; step < 4; step++) {
      const [g1, g2] = [gradients(stock, step), gradients(fused, step)];
      stockAdam.applyGradients(Object.entries(g1).map(([name, tensor]) => ({ name, tensor })));
      applyGradients(tf, fusedAdam, g2);
      tf.dispose([...Object.values(g1), ...Object.values(g2)]);
    }
    stock.forEach((variable, i) => expect(bits(fused[i]!)).toEqual(bits(variable)));
    const moments = async (adam: typeof stockAdam) => (await adam.getWeights()).map((w) => bits(w.tensor));
    return Promise.all([moments(stockAdam), moments(fusedAdam)]).then(([a, b]) => expect(b).toEqual(a));
  });

  it.each([
    ['Adam', () => tf.train.adam(1e-3)],
    ['SGD (left to the optimizer)', () => tf.train.sgd(0.1)],
  ])('%s leaves no tensor behind once its state exists', (_name, makeOptimizer) => {
    const variables = makeVariables(`leak-${_name}`);
    const optimizer = makeOptimizer();
    const step = (n: number) => {
      const grads = gradients(variables, n);
      applyGradients(tf, optimizer, grads);
      tf.dispose(Object.values(grads));
    };
    step(1); // creates the optimizer's state
    const settled = tf.memory().numTensors;
    step(2);
    expect(tf.memory().numTensors).toBe(settled);
  });
});
