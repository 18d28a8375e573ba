import type * as Tfjs from '@tensorflow/tfjs';
import { simdFor } from './simd-kernels.js';
import type { Tf } from './tf.js';

/** The state tfjs-core's AdamOptimizer keeps (not in its public typings). */
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: Tfjs.Variable;
  accBeta2: Tfjs.Variable;
  accumulatedFirstMoment: ({ originalName: string; variable: Tfjs.Variable } | undefined)[];
  accumulatedSecondMoment: ({ originalName: string; variable: Tfjs.Variable } | undefined)[];
  incrementIterations(): void;
}

/**
 * `optimizer.applyGradients(gradients)`, with Adam on wasm done by one SIMD pass per variable
 * instead of about 15 small kernels per variable (timings: bench/kernels/RESULTS.md).
 * It keeps the optimizer's own state (so its weights save and restore as before) and rounds every
 * operation as tfjs-core does, in the same order: the same bits (a unit test checks it).
 */
export function applyGradients(tf: Tf, optimizer: Tfjs.Optimizer, gradients: Tfjs.NamedTensorMap): void {
  const simd = simdFor(tf);
  if (!simd || optimizer.getClassName() !== 'Adam' || Object.values(gradients).some((g) => g.dtype !== 'float32')) {
    optimizer.applyGradients(gradients);
    return;
  }
  const adam = optimizer as unknown as AdamInternals;
  const f32 = Math.fround;
  tf.tidy(() => {
    const correction1 = f32(1 - adam.accBeta1.dataSync()[0]!);
    const correction2 = f32(1 - adam.accBeta2.dataSync()[0]!);
    const rates = [f32(adam.beta1), f32(1 - adam.beta1), f32(adam.beta2), f32(1 - adam.beta2), correction1, correction2, f32(adam.epsilon), f32(-adam.learningRate)];
    Object.entries(gradients).forEach(([name, gradient], i) => {
      const value = tf.engine().registeredVariables[name]!;
      const m = (adam.accumulatedFirstMoment[i] ??= moment(tf, value, `${name}/m`)).variable;
      const v = (adam.accumulatedSecondMoment[i] ??= moment(tf, value, `${name}/v`)).variable;
      const inputs = [value, gradient, m, v].map(simd.address);
      const [newValue, newM, newV] = simd.outputs(value.shape, 3, (...outputs) => simd.kernels.adam(...inputs, ...outputs, 1, value.size, ...rates));
      m.assign(newM!);
      v.assign(newV!);
      value.assign(newValue!);
    });
    adam.accBeta1.assign(tf.mul(adam.accBeta1, adam.beta1));
    adam.accBeta2.assign(tf.mul(adam.accBeta2, adam.beta2));
  });
  adam.incrementIterations();
}

function moment(tf: Tf, value: Tfjs.Variable, originalName: string): { originalName: string; variable: Tfjs.Variable } {
  return { originalName, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
}
