import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const loadedTfjs = () => Object.keys(require.cache).filter((file) => /[\\/]@tensorflow[\\/]|[\\/]nsfwjs[\\/]/.test(file));

describe('the runtime module', () => {
  it('loads no TensorFlow.js (and no nsfwjs) until a backend is asked for', async () => {
    const runtime = await import('../../src/runtime/index.js');
    expect(loadedTfjs()).toEqual([]);
    await runtime.loadBackend('cpu');
    expect(loadedTfjs().some((file) => file.includes('tfjs-core'))).toBe(true);
  });
});
