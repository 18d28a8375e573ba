import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const loaded = (pattern: RegExp) => Object.keys(require.cache).filter((file) => pattern.test(file));

describe('the data export module', () => {
  it('loads neither sharp nor TensorFlow.js when imported (the CLI imports it at start-up), and sharp only when it runs', async () => {
    const { exportDataset } = await import('../../src/data/export.js');
    expect(loaded(/[\\/]sharp[\\/]/)).toEqual([]);
    expect(loaded(/[\\/]@tensorflow[\\/]/)).toEqual([]);
    await expect(exportDataset('mnist', { out: '/nonexistent/never-written', perClass: 0 })).rejects.toThrow('--per-class');
    const steps = await Promise.all([import('../../src/steps/load-data.js'), import('../../src/steps/preprocess.js')]);
    expect(steps.map((s) => s.default.name)).toEqual(['load-data', 'preprocess']);
    expect(loaded(/[\\/]sharp[\\/]/).length).toBeGreaterThan(0);
    expect(loaded(/[\\/]@tensorflow[\\/]/)).toEqual([]);
  });
});
