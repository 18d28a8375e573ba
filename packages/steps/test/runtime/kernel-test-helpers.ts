import type { Tensor } from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { loadBackend } from '../../src/runtime/index.js';
import { ourGradient, ourWasmKernel } from '../../src/runtime/wasm-kernels.js';

/** What both kernel test files compare: the wasm backend against the cpu backend on the same inputs. */
export const { tf } = await loadBackend('wasm');

export type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];

/** Runs `compute` on wasm, then on cpu (fresh tensors each time); checks the shapes agree, returns the values. */
export async function onWasmAndCpu(compute: () => Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  const run = (backend: string) => {
    expect(tf.getBackend()).toBe(backend);
    const outputs = tf.tidy(compute);
    const result = { values: outputs.map((t) => t.dataSync() as Float32Array), shapes: outputs.map((t) => t.shape) };
    tf.dispose(outputs);
    return result;
  };
  const onWasm = run('wasm');
  await loadBackend('cpu'); // not tf.setBackend: loadBackend also silences tfjs's cpu banner
  try {
    const onCpu = run('cpu');
    expect(onWasm.shapes).toEqual(onCpu.shapes);
    return [onWasm.values, onCpu.values];
  } finally {
    await loadBackend('wasm');
  }
}

/**
 * Checks that wasm runs the kernel registerWasmKernels registered for `kernelName`, not the stock one:
 * a comparison with the cpu backend alone would pass with the stock kernel too.
 */
export function expectOurKernel(kernelName: string): void {
  const ours = ourWasmKernel(kernelName);
  expect(ours, `registerWasmKernels registered no ${kernelName}`).toBeDefined();
  expect(tf.getKernel(kernelName, 'wasm')?.kernelFunc).toBe(ours);
}

/** Checks that tfjs differentiates `kernelName` with the gradient registerWasmKernels registered. */
export function expectOurGradient(kernelName: string): void {
  const ours = ourGradient(kernelName);
  expect(ours, `registerWasmKernels registered no ${kernelName} gradient`).toBeDefined();
  expect(tf.getGradient(kernelName)?.gradFunc).toBe(ours);
}

/** max |a − b| / max |b|. */
export function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const scale = Math.max(...Array.from(b, Math.abs));
  return Math.max(...Array.from(a, (v, i) => Math.abs(v - (b[i] ?? Number.NaN)))) / scale;
}

export function outSize(size: number, k: number, stride: number, pad: Pad, side: 1 | 2): number {
  if (pad === 'same') return Math.ceil(size / stride);
  if (pad === 'valid') return Math.ceil((size - k + 1) / stride);
  const [before, after] = pad[side];
  return Math.floor((size + before + after - k) / stride) + 1;
}

/** Odd and even sizes; the small one gives maps of at most 3×3, which some kernels treat apart. */
export const SIZES: [number, number][] = [
  [7, 10],
  [8, 11],
  [3, 2],
];
