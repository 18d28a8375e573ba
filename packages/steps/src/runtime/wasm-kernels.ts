import type * as Tfjs from '@tensorflow/tfjs';
import { conv2dBackpropFilter, conv2dBackpropInput } from './wasm-kernels-conv.js';
import { depthwiseBackpropFilter, depthwiseBackpropInput } from './wasm-kernels-depthwise.js';
import type { Tf } from './tf.js';
import { batchNormGradient, batchNormKernel, clipGradient, pooledReduceKernel, reluGradient, sharedIdentityKernel, tileKernel, transposedMatMulKernel } from './wasm-kernels-overrides.js';
import { asTensor, type ConvGradAttrs, type Tensor4D } from './wasm-kernels-util.js';

type KernelFunc = Tfjs.KernelConfig['kernelFunc'];
type Attrs<T> = ConvGradAttrs & T;

/** Configs this module registered, so a second call neither re-registers nor wraps its own kernels. */
const ours = new WeakSet<object>();
/** The kernelFunc (on wasm) and gradFunc this module registered last, by kernel name. */
const kernelFuncs = new Map<string, KernelFunc>();
const gradFuncs = new Map<string, Tfjs.GradConfig['gradFunc']>();

/** The wasm kernelFunc registerWasmKernels registered for `kernelName`, if it registered one. */
export function ourWasmKernel(kernelName: string): KernelFunc | undefined {
  return kernelFuncs.get(kernelName);
}

/** The gradFunc registerWasmKernels registered for `kernelName`, if it registered one. */
export function ourGradient(kernelName: string): Tfjs.GradConfig['gradFunc'] | undefined {
  return gradFuncs.get(kernelName);
}

/**
 * Registers the kernels tfjs-backend-wasm 4.22 lacks and training needs (Conv2DBackpropFilter,
 * DepthwiseConv2dNativeBackpropFilter/Input), built from kernels wasm runs fast. Then replaces what
 * profiling a MobileNetV2 training step showed to be slow on wasm (bench/kernels): the kernels
 * Conv2DBackpropInput, Tile, Sum, Mean, Identity and FusedBatchNorm, and the gradients of Relu,
 * ClipByValue (relu6) and FusedBatchNorm, each built from fast kernels or SIMD ones (simd-kernels.ts)
 * with the stock one kept for what it does not cover; and BatchMatMul with a transposed operand.
 * Idempotent.
 */
export function registerWasmKernels(tf: Tf): void {
  install(tf, 'Conv2DBackpropFilter', (i, a) => conv2dBackpropFilter(tf, t4(tf, i['x']), t4(tf, i['dy']), a as Attrs<FilterShape>));
  install(tf, 'Conv2DBackpropInput', (i, a) => conv2dBackpropInput(tf, t4(tf, i['dy']), t4(tf, i['filter']), a as Attrs<InputShape>));
  install(tf, 'DepthwiseConv2dNativeBackpropFilter', (i, a) =>
    depthwiseBackpropFilter(tf, t4(tf, i['x']), t4(tf, i['dy']), a as Attrs<FilterShape>),
  );
  install(tf, 'DepthwiseConv2dNativeBackpropInput', (i, a) =>
    depthwiseBackpropInput(tf, t4(tf, i['dy']), t4(tf, i['filter']), a as Attrs<InputShape>),
  );
  wrapStock(tf, 'BatchMatMul', (stock) => transposedMatMulKernel(tf, stock));
  wrapStock(tf, 'Tile', (stock) => tileKernel(tf, stock));
  wrapStock(tf, 'Sum', (stock) => pooledReduceKernel(tf, stock, false));
  wrapStock(tf, 'Mean', (stock) => pooledReduceKernel(tf, stock, true));
  wrapStock(tf, 'Identity', (stock) => sharedIdentityKernel(stock));
  wrapStock(tf, 'FusedBatchNorm', (stock) => batchNormKernel(tf, stock));
  wrapGradient(tf, 'Relu', (stock) => reluGradient(tf, stock));
  wrapGradient(tf, 'ClipByValue', (stock) => clipGradient(tf, stock));
  wrapGradient(tf, 'FusedBatchNorm', (stock) => batchNormGradient(tf, stock));
}

/** Replaces a kernel's gradient (for every backend: each replacement checks for wasm itself). */
function wrapGradient(tf: Tf, kernelName: string, override: (stock: Tfjs.GradConfig) => Tfjs.GradConfig): void {
  const stock = tf.getGradient(kernelName);
  if (!stock || ours.has(stock)) return;
  const config = override(stock);
  tf.unregisterGradient(kernelName);
  tf.registerGradient(config);
  ours.add(config);
  gradFuncs.set(kernelName, config.gradFunc);
}

interface FilterShape {
  filterShape: [number, number, number, number];
}
interface InputShape {
  inputShape: [number, number, number, number];
}

/** Registers (or replaces) kernelName on wasm; compute runs inside a tidy that keeps only its result. */
function install(tf: Tf, kernelName: string, compute: (inputs: Tfjs.NamedTensorInfoMap, attrs: object) => Tfjs.Tensor): void {
  const existing = tf.getKernel(kernelName, 'wasm');
  if (existing && ours.has(existing)) return;
  const kernelFunc: KernelFunc = ({ inputs, attrs }) => tf.tidy(() => compute(inputs, attrs ?? {}));
  replace(tf, { kernelName, backendName: 'wasm', kernelFunc });
}

function replace(tf: Tf, config: Tfjs.KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
  ours.add(config);
  kernelFuncs.set(config.kernelName, config.kernelFunc);
}

/** Replaces a stock wasm kernel by an override (wasm-kernels-overrides.ts) that falls back on the stock one. */
function wrapStock(tf: Tf, kernelName: string, override: (stock: KernelFunc) => KernelFunc): void {
  const stock = tf.getKernel(kernelName, 'wasm');
  if (!stock || ours.has(stock)) return;
  replace(tf, { ...stock, kernelFunc: override(stock.kernelFunc) });
}

function t4(tf: Tf, info: Tfjs.TensorInfo | undefined): Tensor4D {
  return asTensor(tf, info) as Tensor4D;
}
