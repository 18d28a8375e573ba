import type * as Tfjs from '@tensorflow/tfjs';
import type { Tf } from './tf.js';

/*
 * Kernels written directly in WebAssembly SIMD for what tfjs-backend-wasm can only build from many
 * small kernels (bench/kernels). The module imports the wasm backend's own memory, so it reads and
 * writes tensors where the backend keeps them: no copies. It is assembled from the text below with
 * wabt when the wasm backend loads, once per thread. Every loop adds in a fixed order, so a
 * result does not depend on the thread or the run.
 */

/**
 * A kernel that runs `body` once per float of `rows` rows of `channels` floats, four at a time with
 * SIMD and the rest one by one. `rowWise` pointers move on by a row after each row, `channelWise`
 * ones stay (per-channel values, or per-channel sums). The body is written once for both widths:
 * `(at $p)` is p's float here, `(put $p V)` stores V there, `(let $l V)`/`(use $l)` a local,
 * `(splat $s)` an f32 parameter, `(step V)` 1 where V > 0 (else 0), `(nan V)` NaN where V is NaN
 * (else 0) and `f.` an f32 operation.
 */
function channelKernel(name: string, spec: { rowWise: string[]; channelWise: string[]; scalars?: string[]; locals?: string[]; body: string }): string {
  const params = [...spec.rowWise, ...spec.channelWise].map((p) => `(param $${p} i32)`).join(' ');
  const scalars = (spec.scalars ?? []).map((p) => `(param $${p} f32)`).join(' ');
  const locals = (spec.locals ?? []).map((l) => `(local $${l}_v v128) (local $${l}_s f32)`).join(' ');
  const width = (vector: boolean) =>
    spec.body
      .replaceAll(/\(at \$(\w+)\)/g, (_, p) => `(${vector ? 'v128' : 'f32'}.load (i32.add (local.get $${p}) (local.get $k)))`)
      .replaceAll(/\(put \$(\w+) /g, (_, p) => `(${vector ? 'v128' : 'f32'}.store (i32.add (local.get $${p}) (local.get $k)) `)
      .replaceAll(/\(let \$(\w+) /g, (_, l) => `(local.set $${l}_${vector ? 'v' : 's'} `)
      .replaceAll(/\(use \$(\w+)\)/g, (_, l) => `(local.get $${l}_${vector ? 'v' : 's'})`)
      .replaceAll(/\(splat \$(\w+)\)/g, (_, p) => (vector ? `(f32x4.splat (local.get $${p}))` : `(local.get $${p})`))
      .replaceAll('(one)', vector ? '(f32x4.splat (f32.const 1))' : '(f32.const 1)')
      .replaceAll('(step ', vector ? '(call $stepVector ' : '(call $stepScalar ')
      .replaceAll('(nan ', vector ? '(call $nanVector ' : '(call $nanScalar ')
      .replaceAll('(f.', vector ? '(f32x4.' : '(f32.');
  const advance = spec.rowWise.map((p) => `(local.set $${p} (i32.add (local.get $${p}) (local.get $bytes)))`).join(' ');
  return `
  (func $${name} (export "${name}") ${params} (param $rows i32) (param $channels i32) ${scalars}
    (local $k i32) (local $bytes i32) (local $vectorBytes i32) ${locals}
    (local.set $bytes (i32.shl (local.get $channels) (i32.const 2)))
    (local.set $vectorBytes (i32.and (local.get $bytes) (i32.const -16)))
    (block $done
      (loop $row
        (br_if $done (i32.eqz (local.get $rows)))
        (local.set $k (i32.const 0))
        (block $vectorsDone
          (loop $vectors
            (br_if $vectorsDone (i32.ge_u (local.get $k) (local.get $vectorBytes)))
            ${width(true)}
            (local.set $k (i32.add (local.get $k) (i32.const 16)))
            (br $vectors)))
        (block $scalarsDone
          (loop $scalars
            (br_if $scalarsDone (i32.ge_u (local.get $k) (local.get $bytes)))
            ${width(false)}
            (local.set $k (i32.add (local.get $k) (i32.const 4)))
            (br $scalars)))
        ${advance}
        (local.set $rows (i32.sub (local.get $rows) (i32.const 1)))
        (br $row))))`;
}

const SOURCE = `
(module
  (import "env" "memory" (memory 0))

  (func $stepVector (param $v v128) (result v128)
    (v128.and (f32x4.gt (local.get $v) (v128.const f32x4 0 0 0 0)) (f32x4.splat (f32.const 1))))
  (func $stepScalar (param $v f32) (result f32)
    (select (f32.const 1) (f32.const 0) (f32.gt (local.get $v) (f32.const 0))))

  ;; NaN where v is NaN, else +0: added to a result, it passes NaN on as tfjs's step does (v - v would
  ;; also turn an infinite v into NaN)
  (func $nanVector (param $v v128) (result v128)
    (v128.and (f32x4.ne (local.get $v) (local.get $v)) (local.get $v)))
  (func $nanScalar (param $v f32) (result f32)
    (select (local.get $v) (f32.const 0) (f32.ne (local.get $v) (local.get $v))))

  (func (export "zero") (param $out i32) (param $count i32)
    (memory.fill (local.get $out) (i32.const 0) (i32.shl (local.get $count) (i32.const 2))))

  ;; out += a * b
  ${channelKernel('mulAdd', { rowWise: ['out', 'a', 'b'], channelWise: [], body: '(put $out (f.add (at $out) (f.mul (at $a) (at $b))))' })}

  ;; Depthwise conv gradients, channel multiplier 1, NHWC, every size at least 1: for each output pixel
  ;; (b, y, x) in that order and tap (i, j) inside the input, with p = x[b, y*sh+i-pt, x*sw+j-pl, :]:
  ;;   input false: filter gradient, out[i,j,:] += p * dy[b,y,x,:] (out has the filter's shape)
  ;;   input true:  input gradient, the same place of out (x's shape) += filter[i,j,:] * dy[b,y,x,:]
  (func (export "depthwiseGrad")
    (param $input i32) (param $x i32) (param $dy i32) (param $out i32)
    (param $n i32) (param $h i32) (param $w i32) (param $c i32) (param $oh i32) (param $ow i32)
    (param $kh i32) (param $kw i32) (param $sh i32) (param $sw i32) (param $pt i32) (param $pl i32)
    (local $b i32) (local $y i32) (local $col i32) (local $i i32) (local $j i32)
    (local $inRow i32) (local $inCol i32) (local $rowBytes i32) (local $dyRow i32)
    (local $tap i32) (local $pixel i32)
    (local.set $rowBytes (i32.shl (local.get $c) (i32.const 2)))
    (memory.fill (local.get $out) (i32.const 0)
      (i32.mul (select (i32.mul (i32.mul (local.get $n) (local.get $h)) (local.get $w)) (i32.mul (local.get $kh) (local.get $kw)) (local.get $input))
        (local.get $rowBytes)))
    (local.set $dyRow (local.get $dy))
    (loop $batch
      (local.set $y (i32.const 0))
      (loop $rows
        (local.set $col (i32.const 0))
        (loop $cols
          (local.set $i (i32.const 0))
          (loop $tapRows
            (local.set $inRow (i32.sub (i32.add (i32.mul (local.get $y) (local.get $sh)) (local.get $i)) (local.get $pt)))
            (if (i32.lt_u (local.get $inRow) (local.get $h))
              (then
                (local.set $j (i32.const 0))
                (loop $tapCols
                  (local.set $inCol (i32.sub (i32.add (i32.mul (local.get $col) (local.get $sw)) (local.get $j)) (local.get $pl)))
                  (if (i32.lt_u (local.get $inCol) (local.get $w))
                    (then
                      (local.set $tap (i32.mul (i32.add (i32.mul (local.get $i) (local.get $kw)) (local.get $j)) (local.get $rowBytes)))
                      (local.set $pixel
                        (i32.mul
                          (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $h)) (local.get $inRow)) (local.get $w)) (local.get $inCol))
                          (local.get $rowBytes)))
                      (if (local.get $input)
                        (then (call $mulAdd (i32.add (local.get $out) (local.get $pixel)) (i32.add (local.get $x) (local.get $tap)) (local.get $dyRow) (i32.const 1) (local.get $c)))
                        (else (call $mulAdd (i32.add (local.get $out) (local.get $tap)) (i32.add (local.get $x) (local.get $pixel)) (local.get $dyRow) (i32.const 1) (local.get $c))))))
                  (br_if $tapCols (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $kw))))))
            (br_if $tapRows (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $kh))))
          (local.set $dyRow (i32.add (local.get $dyRow) (local.get $rowBytes)))
          (br_if $cols (i32.lt_u (local.tee $col (i32.add (local.get $col) (i32.const 1))) (local.get $ow))))
        (br_if $rows (i32.lt_u (local.tee $y (i32.add (local.get $y) (i32.const 1))) (local.get $oh))))
      (br_if $batch (i32.lt_u (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $n)))))

  ;; One Adam update, each operation rounded to f32 in the order tfjs-core's AdamOptimizer runs its
  ;; kernels, so the result is bit for bit the same:
  ;;   m' = m*beta1 + g*(1-beta1);  v' = v*beta2 + (g*g)*(1-beta2)
  ;;   value' = ((m'/(1-beta1^t)) / (sqrt(v'/(1-beta2^t)) + eps)) * -lr + value
  ${channelKernel('adam', {
    rowWise: ['value', 'grad', 'm', 'v', 'newValue', 'newM', 'newV'],
    channelWise: [],
    scalars: ['beta1', 'oneMinusBeta1', 'beta2', 'oneMinusBeta2', 'correction1', 'correction2', 'epsilon', 'negativeRate'],
    locals: ['m1', 'v1'],
    body: `(let $m1 (f.add (f.mul (at $m) (splat $beta1)) (f.mul (at $grad) (splat $oneMinusBeta1))))
      (let $v1 (f.add (f.mul (at $v) (splat $beta2)) (f.mul (f.mul (at $grad) (at $grad)) (splat $oneMinusBeta2))))
      (put $newM (use $m1))
      (put $newV (use $v1))
      (put $newValue (f.add
        (f.mul (f.div (f.div (use $m1) (splat $correction1)) (f.add (f.sqrt (f.div (use $v1) (splat $correction2))) (splat $epsilon))) (splat $negativeRate))
        (at $value)))`,
  })}

  ;; Batch normalization with per-channel factor = scale/sqrt(variance + eps): ((x - mean) * factor) + offset,
  ;; rounded as the three broadcast kernels it replaces (wasm-kernels-overrides.ts) round.
  ${channelKernel('batchNorm', { rowWise: ['x', 'out'], channelWise: ['mean', 'factor', 'offset'], body: '(put $out (f.add (f.mul (f.sub (at $x) (at $mean)) (at $factor)) (at $offset)))' })}

  ;; out = (dy * a) * b per channel: batch normalization's input gradient (a = 1/sqrt(variance + eps), b = scale).
  ${channelKernel('scaleChannels', { rowWise: ['dy', 'out'], channelWise: ['a', 'b'], body: '(put $out (f.mul (f.mul (at $dy) (at $a)) (at $b)))' })}

  ;; out[c] += x[r, c] over the rows, in row order (out zeroed first).
  ${channelKernel('channelSums', { rowWise: ['x'], channelWise: ['out'], body: '(put $out (f.add (at $out) (at $x)))' })}

  ;; out[c] += dy * ((x - mean) * a) over the rows: batch normalization's scale gradient (a = 1/sqrt(variance + eps)).
  ${channelKernel('centeredDots', { rowWise: ['dy', 'x'], channelWise: ['mean', 'a', 'out'], body: '(put $out (f.add (at $out) (f.mul (at $dy) (f.mul (f.sub (at $x) (at $mean)) (at $a)))))' })}

  ;; relu's gradient as tfjs-core computes it, dy * step(x), NaN where x is NaN as there.
  ${channelKernel('reluGradient', { rowWise: ['dy', 'x', 'out'], channelWise: [], body: '(put $out (f.mul (at $dy) (f.add (step (at $x)) (nan (at $x)))))' })}

  ;; relu6's gradient as wasm-kernels-overrides.ts computes it, dy * (1 - (step(min - x) + step(x - max))),
  ;; NaN where x is NaN as there.
  ${channelKernel('clipGradient', {
    rowWise: ['dy', 'x', 'out'],
    channelWise: [],
    scalars: ['min', 'max'],
    body: '(put $out (f.mul (at $dy) (f.add (f.sub (one) (f.add (step (f.sub (splat $min) (at $x))) (step (f.sub (at $x) (splat $max))))) (nan (at $x)))))',
  })}
)`;

type Kernel = (...args: number[]) => void;
interface SimdExports {
  zero: Kernel;
  depthwiseGrad: Kernel;
  reluGradient: Kernel;
  adam: Kernel;
  batchNorm: Kernel;
  scaleChannels: Kernel;
  channelSums: Kernel;
  centeredDots: Kernel;
  clipGradient: Kernel;
}

/** The part of the WebAssembly API used here (@types/node 20 does not declare it). */
interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<{ exports: unknown }>;
}
const { WebAssembly } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

/** What the wasm backend exposes of itself (not in its public typings). */
interface WasmBackendInternals {
  wasm: { asm?: { memory?: object } };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): Tfjs.TensorInfo;
}

/** The SIMD kernels linked to the active wasm backend, with what a caller needs to run them on its tensors. */
export interface Simd {
  kernels: SimdExports;
  /** Byte address of a tensor's values in the backend's memory. */
  address(tensor: Tfjs.TensorInfo): number;
  /** `count` new float32 tensors of `shape` that `fill` writes at the addresses it is given. */
  outputs(shape: number[], count: number, fill: (...addresses: number[]) => void): Tfjs.Tensor[];
  /** One new float32 tensor of `shape` that `fill` writes at the address it is given. */
  output(shape: number[], fill: (address: number) => void): Tfjs.Tensor;
}

let compiled: Promise<object> | undefined;
const linked = new WeakMap<object, Simd>();

/** Assembles the module (once per thread) and links it to the active wasm backend's memory. */
export async function loadSimdKernels(tf: Tf): Promise<void> {
  if (tf.getBackend() !== 'wasm') return;
  const backend = tf.backend() as unknown as WasmBackendInternals;
  if (linked.has(backend)) return;
  const memory = backend.wasm.asm?.memory;
  if (!memory) return;
  compiled ??= assemble();
  const instance = await WebAssembly.instantiate(await compiled, { env: { memory } });
  linked.set(backend, bind(tf, backend, instance.exports as unknown as SimdExports));
}

async function assemble(): Promise<object> {
  const { default: initWabt } = await import('wabt');
  const wabt = await initWabt();
  const parsed = wabt.parseWat('simd-kernels.wat', SOURCE, { simd: true, bulk_memory: true });
  try {
    return await WebAssembly.compile(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}

function bind(tf: Tf, backend: WasmBackendInternals, kernels: SimdExports): Simd {
  const address = (tensor: Tfjs.TensorInfo) => {
    const entry = backend.dataIdMap.get(tensor.dataId);
    if (!entry) throw new Error('tensor is not held by the wasm backend');
    return entry.memoryOffset;
  };
  const outputs = (shape: number[], count: number, fill: (...addresses: number[]) => void) => {
    const infos = Array.from({ length: count }, () => backend.makeOutput(shape, 'float32'));
    fill(...infos.map(address));
    return infos.map((info) => tf.engine().makeTensorFromTensorInfo(info));
  };
  return { kernels, address, outputs, output: (shape, fill) => outputs(shape, 1, fill)[0]! };
}

/** The active backend's SIMD kernels: undefined off wasm, or where they could not be loaded. */
export function simdFor(tf: Tf): Simd | undefined {
  return tf.getBackend() === 'wasm' ? linked.get(tf.backend()) : undefined;
}
