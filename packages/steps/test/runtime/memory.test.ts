import { describe, expect, it } from 'vitest';
import { checkMemory, defaultMemoryBudget, MemoryBudgetError, RuntimeUserError, tensorBytes, WASM_HEAP_LIMIT_BYTES } from '../../src/runtime/index.js';
import { wasm } from './helpers.js';

const tf = await wasm();

describe('memory budget', () => {
  it('keeps wasm a gigabyte under its 4 GiB heap cap', () => {
    expect(defaultMemoryBudget('wasm')).toBe(WASM_HEAP_LIMIT_BYTES - 1024 ** 3);
    expect(defaultMemoryBudget('tensorflow')).toBeGreaterThan(0);
  });

  it('sizes tensors', () => {
    expect(tensorBytes([32, 224, 224, 3])).toBe(19_267_584);
    expect(tensorBytes([10], 'bool')).toBe(10);
  });

  it('throws before an allocation would pass the budget, counting what is held', () => {
    const held = tf.zeros([1024, 256]); // 1 MiB
    const batch = tensorBytes([32, 96, 96, 3]);
    expect(() => checkMemory(tf, 8 * 1024 ** 2, batch)).not.toThrow();
    const error = (() => {
      try {
        checkMemory(tf, 2 * 1024 ** 2, batch, 'a batch of 32 images at 96 px');
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(MemoryBudgetError);
    expect(error).toBeInstanceOf(RuntimeUserError);
    expect((error as Error).message).toBe(
      "tensors would take 4.4 MiB (1.0 MiB held + 3.4 MiB for a batch of 32 images at 96 px), over the 2.0 MiB memory budget, and wasm's heap is capped at 4 GiB: use a smaller batch_size or input_size",
    );
    held.dispose();
    expect(() => checkMemory(tf, 4 * 1024 ** 2, batch)).not.toThrow();
  });
});
