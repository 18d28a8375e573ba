import os from 'node:os';
import { formatBytes } from '@headstart/core';
import type { BackendName, Tf } from './backend.js';
import { MemoryBudgetError } from './errors.js';

/** The wasm backend's heap cannot grow past 4 GiB; a failed allocation there is not reported. */
export const WASM_HEAP_LIMIT_BYTES = 4 * 1024 ** 3;

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };

/**
 * Tensor bytes a run may hold at once. On wasm it stays a gigabyte under the heap cap: kernels need
 * scratch space beyond the tensors, and the heap fragments.
 */
export function defaultMemoryBudget(backend: BackendName): number {
  if (backend === 'wasm') return WASM_HEAP_LIMIT_BYTES - 1024 ** 3;
  return Math.floor(os.totalmem() * 0.75);
}

/** Bytes a tensor of this shape and dtype takes. */
export function tensorBytes(shape: readonly number[], dtype: string = 'float32'): number {
  const size = BYTES_PER_ELEMENT[dtype];
  if (size === undefined) throw new Error(`no byte size known for dtype ${dtype}`);
  return shape.reduce((n, d) => n * d, 1) * size;
}

/**
 * Throws MemoryBudgetError when the tensors held now plus `plannedBytes` (what the caller is about to
 * allocate) would exceed `budgetBytes`. Call it before each batch.
 */
export function checkMemory(tf: Tf, budgetBytes: number, plannedBytes = 0, what = 'the next batch'): void {
  const held = tf.memory().numBytes;
  if (held + plannedBytes <= budgetBytes) return;
  const onWasm = tf.getBackend() === 'wasm' ? ", and wasm's heap is capped at 4 GiB" : '';
  throw new MemoryBudgetError(
    `tensors would take ${formatBytes(held + plannedBytes)} (${formatBytes(held)} held + ${formatBytes(plannedBytes)} ` +
      `for ${what}), over the ${formatBytes(budgetBytes)} memory budget${onWasm}: use a smaller batch_size or input_size`,
  );
}
