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

/** Per-variable learning-rate multipliers, by variable name, of optimizers given some (setLearningRateMultipliers). */
const multipliersOf = new WeakMap<Tfjs.Optimizer, ReadonlyMap<string, number>>();

/**
 * Makes Adam scale each variable's learning rate by `multipliers.get(name)` (1 when absent) in every
 * later step, whoever applies it: `applyGradients` below and tfjs's `fit` (the optimizer's own
 * `applyGradients` is replaced by it). The rate is scaled inside the update, not the gradient:
 * Adam divides a scaled gradient's scale away.
 */
export function setLearningRateMultipliers(tf: Tf, optimizer: Tfjs.Optimizer, multipliers: ReadonlyMap<string, number>): void {
  if (optimizer.getClassName() !== 'Adam') throw new Error(`per-layer learning rates need Adam, not ${optimizer.getClassName()}`);
  multipliersOf.set(optimizer, multipliers);
  optimizer.applyGradients = (gradients) => applyGradients(tf, optimizer, Array.isArray(gradients) ? Object.fromEntries(gradients.map((g) => [g.name, g.tensor])) : gradients);
}

/**
 * `optimizer.applyGradients(gradients)`, with Adam on wasm done by one SIMD pass per variable
 * instead of about 15 small kernels per variable (timings: bench/kernels/RESULTS.md), and with the
 * optimizer's per-variable multipliers when it has some (setLearningRateMultipliers).
 * It keeps the optimizer's own state (so its weights save and restore as before) and rounds every
 * operation as tfjs-core does, in the same order: the same bits (a unit test checks it).
 */
export function applyGradients(tf: Tf, optimizer: Tfjs.Optimizer, gradients: Tfjs.NamedTensorMap): void {
  const multipliers = multipliersOf.get(optimizer);
  if (optimizer.getClassName() !== 'Adam' || Object.values(gradients).some((g) => g !== undefined && g !== null && g.dtype !== 'float32')) {
    if (multipliers) throw new Error('per-layer learning rates need Adam on float32 variables');
    optimizer.applyGradients(gradients);
    return;
  }
  if (!simdFor(tf) && !multipliers) {
    optimizer.applyGradients(gradients);
    return;
  }
  const adam = optimizer as unknown as AdamInternals;
  const rateOf = (name: string) => -adam.learningRate * (multipliers?.get(name) ?? 1);
  tf.tidy(() => {
    const update = simdFor(tf) ? fusedUpdate(tf, adam) : opsUpdate(tf, adam);
    Object.entries(gradients).forEach(([name, gradient], i) => {
      const value = tf.engine().registeredVariables[name]!;
      const m = (adam.accumulatedFirstMoment[i] ??= moment(tf, value, `${name}/m`)).variable;
      const v = (adam.accumulatedSecondMoment[i] ??= moment(tf, value, `${name}/v`)).variable;
      if (gradient) update(value, gradient, m, v, rateOf(name)); // none: the weight does not reach the loss (tfjs-core skips it too)
    });
    adam.accBeta1.assign(tf.mul(adam.accBeta1, adam.beta1));
    adam.accBeta2.assign(tf.mul(adam.accBeta2, adam.beta2));
  });
  adam.incrementIterations();
}

type Update = (value: Tfjs.Variable, gradient: Tfjs.Tensor, m: Tfjs.Variable, v: Tfjs.Variable, rate: number) => void;

/** One variable's step by the SIMD kernel, `rate` being −lr (× its multiplier). */
function fusedUpdate(tf: Tf, adam: AdamInternals): Update {
  const simd = simdFor(tf)!;
  const f32 = Math.fround;
  const correction1 = f32(1 - adam.accBeta1.dataSync()[0]!);
  const correction2 = f32(1 - adam.accBeta2.dataSync()[0]!);
  const rates = [f32(adam.beta1), f32(1 - adam.beta1), f32(adam.beta2), f32(1 - adam.beta2), correction1, correction2, f32(adam.epsilon)];
  return (value, gradient, m, v, rate) => {
    const inputs = [value, gradient, m, v].map(simd.address);
    const [newValue, newM, newV] = simd.outputs(value.shape, 3, (...outputs) => simd.kernels.adam(...inputs, ...outputs, 1, value.size, ...rates, f32(rate)));
    m.assign(newM!);
    v.assign(newV!);
    value.assign(newValue!);
  };
}

/** One variable's step by tfjs ops, as tfjs-core's AdamOptimizer computes it (same ops, same order), `rate` being −lr (× its multiplier). */
function opsUpdate(tf: Tf, adam: AdamInternals): Update {
  const oneMinusAccBeta1 = tf.sub(1, adam.accBeta1);
  const oneMinusAccBeta2 = tf.sub(1, adam.accBeta2);
  return (value, gradient, m, v, rate) => {
    const newM = tf.add(tf.mul(m, adam.beta1), tf.mul(gradient, 1 - adam.beta1));
    const newV = tf.add(tf.mul(v, adam.beta2), tf.mul(tf.square(gradient), 1 - adam.beta2));
    const correctedM = tf.div(newM, oneMinusAccBeta1);
    const correctedV = tf.div(newV, oneMinusAccBeta2);
    m.assign(newM);
    v.assign(newV);
    value.assign(tf.add(tf.mul(tf.div(correctedM, tf.add(tf.sqrt(correctedV), adam.epsilon)), rate), value));
  };
}

function moment(tf: Tf, value: Tfjs.Variable, originalName: string): { originalName: string; variable: Tfjs.Variable } {
  return { originalName, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
}
