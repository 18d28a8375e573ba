import type * as Tfjs from '@tensorflow/tfjs';
import { conv2dBackpropFilter, conv2dBackpropInput } from './wasm-kernels-conv.js';
import { depthwiseBackpropFilter, depthwiseBackpropInput } from './wasm-kernels-depthwise.js';
import { fasterBatchNorm, fasterBatchNormGradient, fasterClipGradient, fasterIdentity, fasterMatMul, fasterReduce, fasterReluGradient, fasterTile } from './wasm-kernels-faster.js';
import { asTensor, type ConvGradAttrs, type Tensor4D, type Tf } from './wasm-kernels-util.js';

type KernelFunc = Tfjs.KernelConfig['kernelFunc'];
type Attrs<T> = ConvGradAttrs & T;

/** Configs this module registered, so a second call neither re-registers nor wraps its own kernels. */
const ours = new WeakSet<object>();

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
  wrapStock(tf, 'BatchMatMul', (stock) => fasterMatMul(tf, stock));
  wrapStock(tf, 'Tile', (stock) => fasterTile(tf, stock));
  wrapStock(tf, 'Sum', (stock) => fasterReduce(tf, stock, false));
  wrapStock(tf, 'Mean', (stock) => fasterReduce(tf, stock, true));
  wrapStock(tf, 'Identity', (stock) => fasterIdentity(stock));
  wrapStock(tf, 'FusedBatchNorm', (stock) => fasterBatchNorm(tf, stock));
  wrapGradient(tf, 'Relu', (stock) => fasterReluGradient(tf, stock));
  wrapGradient(tf, 'ClipByValue', (stock) => fasterClipGradient(tf, stock));
  wrapGradient(tf, 'FusedBatchNorm', (stock) => fasterBatchNormGradient(tf, stock));
}

/** Replaces a kernel's gradient (for every backend: each replacement checks for wasm itself). */
function wrapGradient(tf: Tf, kernelName: string, faster: (stock: Tfjs.GradConfig) => Tfjs.GradConfig): void {
  const stock = tf.getGradient(kernelName);
  if (!stock || ours.has(stock)) return;
  const config = faster(stock);
  tf.unregisterGradient(kernelName);
  tf.registerGradient(config);
  ours.add(config);
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
}

/** Replaces a stock wasm kernel by a faster kernelFunc that falls back on the stock one. */
function wrapStock(tf: Tf, kernelName: string, faster: (stock: KernelFunc) => KernelFunc): void {
  const stock = tf.getKernel(kernelName, 'wasm');
  if (!stock || ours.has(stock)) return;
  replace(tf, { ...stock, kernelFunc: faster(stock.kernelFunc) });
}

function t4(tf: Tf, info: Tfjs.TensorInfo | undefined): Tensor4D {
  return asTensor(tf, info) as Tensor4D;
}
